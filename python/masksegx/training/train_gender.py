"""Train the attribute network's gender head on faces with and without masks; add it to the model.

    python -m masksegx.training.attr_cache --data ../shared/data --out .data/attr_g \\
        --sources mtfl,utk,cuhk
    python -m masksegx.training.attr_cache --data ../shared/data --out .data/attr_wear \\
        --sources facemask,ilc,ffhq,real_dev
    python -m masksegx.training.teachers --data ../shared/data --cache .data/attr_g \\
        .data/attr_wear --out .data/teachers_gw.npz --zooms 1.0
    python -m masksegx.training.train_gender --cache .data/attr_g .data/attr_wear \\
        --teachers .data/teachers_gw.npz --model python/masksegx/models/attributes.onnx \\
        --out build/gender/attributes.onnx --data ../shared/data --evaluate [--source pooled]

Issue 13: the joint softmax's gender marginal falls below gender-v1 on faces from other sources.
The trunk was trained once (on a GPU) with UTKFace crops that an early cache had misaligned, and
its gender is one marginal of the 22-way softmax on globally pooled features. This adds an
output ``gender`` [N, 2] = P(female, male) to the model (:mod:`.branch_heads`), trained here on
the correctly aligned crops: with ``--source block`` a copy of the trunk's last block on the
same input, pooling and one softmax layer (as the wearing head), with ``--source pooled`` one
softmax layer on the trunk's pooled features. The trunk and the joint output do not change:
coverage, the wearing head and the joint's gender marginal stay exactly as they were;
:class:`~masksegx.AttributePredictor` reads the gender from the head where a file has one.
Neither kind ships (measured in ``docs/attributes.md``): the block head moved accuracy from
MTFL to UTKFace at 8 % more time per face, the pooled layer changed little.

Training rows (training splits only): every gender-labelled crop (MTFL, UTKFace), and the
unmasked crops without a label that the teachers label (:func:`~.train_attributes.pseudo_labels`:
det/cuhk5pt, det/facemask and det/ilc2021 ``without_mask`` crops where gender-v1 and
mini-Xception agree with a margin; their mean P(male) as a soft target). Each crop gives both
passes (its own and its mirror image's, the two the predictor averages) of itself and of one
copy wearing a synthetic mask, and ``--copies`` augmented copies (half of them masked, one pass
each): the mask hides what the teachers saw, and the head learns gender from what stays visible.

Settings are chosen on the leave-one-source-out table (issue 13): for each number of epochs and
weight decay, a head trained without MTFL (and det/cuhk5pt, from the same photo collections) is
scored on MTFL's validation crops and one trained without UTKFace on UTKFace's, unmasked and with
synthetic masks, beside gender-v1 on the same crops; the setting with the best mean is trained
on everything and written to ``--out``. The trunk itself saw both sources, so the table holds
out the head's training only.

With ``--evaluate`` the new file is scored as ``masksegx eval-attr`` scores it (validation faces
of MTFL and UTKFace, with and without synthetic masks, gender-v1 on the same faces), beside the
file it started from. The record goes to ``<out>_gender.json``; ``--card`` writes the card's
gender-head section from it (``attr_report`` keeps it). The head depends on the trunk: run this
again after every ``train_attributes`` run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..attributes import METADATA_KEY, gender_marginals
from ..eval.report import markdown_table
from .attr_cache import read_caches
from .attr_report import GENDER_SECTION, RUNS, run_evals, write_head_record
from .branch_heads import (
    GENDER_HEAD,
    Head,
    branch_inputs,
    branch_module,
    feature_session,
    fit_branch,
    mean_probs,
    with_head,
    without_head,
)
from .teachers import GENDER_V1, accuracy, gender_v1_p_male
from .train_attributes import AUGMENTATIONS, Synthesizer, augment, log, pseudo_labels

#: Sources with gender labels; each is held out once by the leave-one-source-out runs, with
#: the unlabelled sources from the same photos.
HELD_OUT = {"mtfl": ("mtfl", "cuhk"), "utk": ("utk",)}
DECAYS = (1e-2, 5e-2)
#: Epochs tried; fewer held out better (the longer runs fit the training sources).
EPOCHS = (2, 4, 8)
LEARNING_RATE = 1e-3
#: The teachers whose agreement labels a face (keys of :mod:`.teachers`' file).
TEACHERS = ("gender_v1", "mini_xception")


def soft_targets(meta: dict[str, np.ndarray]) -> np.ndarray:
    """P(female, male) per crop [N, 2]: one-hot for labelled crops, the teachers' mean for
    pseudo-labelled ones (``gender_target``), NaN for crops without either."""
    p_male = meta["gender_target"].astype(np.float32)
    p_male[meta["gender_target"] < 0] = np.nan
    return np.stack([1 - p_male, p_male], axis=1)


class Features:
    """The branch inputs of the training and validation crops, computed once."""

    def __init__(self, session: Any, settings: dict[str, Any], crops: np.ndarray,
                 meta: dict[str, np.ndarray], synth: Synthesizer, train: np.ndarray,
                 validation: np.ndarray, copies: int, seed: int) -> None:
        rng = np.random.default_rng(seed)

        def masked(i: int, generator: np.random.Generator, coverage: float | None) -> np.ndarray:
            points = meta["landmarks"][i].astype(np.float64)
            return synth(crops[i], points, generator, coverage)[0]

        self.train, self.validation = train, validation
        self.clean = branch_inputs(session, crops[train], settings)[0]
        log(f"{len(train)} training crops: clean passes")
        self.masked = branch_inputs(
            session, np.stack([masked(i, rng, None) for i in train]), settings)[0]
        log("masked copies")
        augmented: list[np.ndarray] = []
        for _ in range(copies):
            base = [masked(i, rng, None) if rng.random() < 0.5 else crops[i] for i in train]
            kind = ("default", "strong")[len(augmented) % 2]
            batch = np.stack([augment(c, rng, AUGMENTATIONS[kind]) for c in base])
            augmented.append(branch_inputs(session, batch, settings, mirror=False)[0][0])
            log(f"augmented copy {len(augmented)}/{copies} ({kind})")
        self.augmented = np.stack(augmented) if augmented else np.zeros((0, 0), np.float32)
        self.val_clean, self.val_joint = branch_inputs(session, crops[validation], settings)
        # The validation masks are drawn as train_attributes draws them: one per face, worn
        # correctly, seeded by the crop's index.
        val_masked = np.stack([masked(int(i), np.random.default_rng([7, int(i)]), 1.0)
                               for i in validation])
        self.val_masked, self.val_masked_joint = branch_inputs(session, val_masked, settings)
        self.val_masked_crops = val_masked
        log(f"{len(validation)} validation crops, clean and masked")

    def rows(self, keep: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training rows and their soft targets for the training crops selected by ``keep``
        (a mask over :attr:`train`)."""
        parts = [self.clean[0], self.clean[1], self.masked[0], self.masked[1], *self.augmented]
        rows = np.concatenate([part[keep] for part in parts])
        return rows, np.concatenate([targets[keep]] * len(parts))


def scores(head: np.ndarray, masked: np.ndarray, gender: np.ndarray) -> dict[str, float]:
    return {"unmasked": accuracy(head, gender), "masked": accuracy(masked, gender)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, nargs="+", required=True,
                        help="attr_cache folders (mtfl, utk; unlabelled sources for --teachers)")
    parser.add_argument("--teachers", type=Path, help="teachers' P(male) per crop "
                        "(masksegx.training.teachers): pseudo-label the unlabelled faces")
    parser.add_argument("--model", type=Path, required=True, help="the attributes.onnx to extend")
    parser.add_argument("--out", type=Path, help="where to write the new file (default: --model)")
    parser.add_argument("--source", choices=("block", "pooled"), default="block",
                        help="what the head reads (see masksegx.training.branch_heads)")
    parser.add_argument("--copies", type=int, default=2, help="augmented copies per crop")
    parser.add_argument("--decays", type=float, nargs="+", default=list(DECAYS))
    parser.add_argument("--epochs", type=int, nargs="+", default=list(EPOCHS))
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="data folder: the masks' templates and gender-v1")
    parser.add_argument("--evaluate", action="store_true",
                        help="score the new and the old file as eval-attr does (with --card)")
    parser.add_argument("--card", type=Path, help="model card whose gender-head section to write")
    args = parser.parse_args(argv)
    import onnx

    from ..eval.attributes import GenderV1

    out_path = args.out or args.model
    out_path.parent.mkdir(parents=True, exist_ok=True)
    source = onnx.load(str(args.model))
    settings = json.loads({p.key: p.value for p in source.metadata_props}[METADATA_KEY])
    if settings.get("mirror_average"):
        raise ValueError(f"model: {args.model} averages the mirror image in its graph; give its "
                         "one-pass copy (train_attributes --single-pass)")
    head = Head(GENDER_HEAD.output, GENDER_HEAD.classes, args.source)
    trunk = without_head(source, head)
    crops, meta, info = read_caches(args.cache)
    if (info["crop_size"], info["padding"]) != (settings["crop_size"], settings["padding"]):
        raise ValueError(f"cache: crops of {info['crop_size']} px, padding {info['padding']}; "
                         f"the model expects {settings['crop_size']}, {settings['padding']}")
    meta["gender_target"] = meta["gender"].astype(np.float32)
    pseudo = (pseudo_labels(meta, args.teachers, TEACHERS) if args.teachers is not None else {})
    targets = soft_targets(meta)
    train = np.flatnonzero((meta["split"] == 0) & ~np.isnan(targets[:, 0]))
    validation = np.flatnonzero((meta["split"] == 1) & (meta["gender"] >= 0)
                                & np.isin(meta["source"], list(HELD_OUT)))
    log(f"{len(train)} training crops ({pseudo} pseudo-labelled), {len(validation)} validation")

    torch.set_num_threads(2)
    synth = Synthesizer(args.cache[0] / "templates")
    features = Features(feature_session(trunk, head), settings, crops, meta, synth, train, validation,
                        args.copies, args.seed)
    gender_v1 = GenderV1(args.data / GENDER_V1)
    val_gender = meta["gender"][validation].astype(np.int64)
    val_source = meta["source"][validation]
    reference = {
        "unmasked": gender_v1_p_male(gender_v1, crops[validation], meta["landmarks"][validation]),
        "masked": gender_v1_p_male(gender_v1, features.val_masked_crops,
                                   meta["landmarks"][validation]),
    }
    template = branch_module(trunk, head)
    train_targets = targets[train]

    def fit(keep: np.ndarray, epochs: int, decay: float) -> torch.nn.Sequential:
        x, y = features.rows(keep, train_targets)
        return fit_branch(template, x, y, decay, epochs, args.learning_rate, args.seed)

    loso: list[dict[str, Any]] = []
    for epochs, decay in itertools.product(args.epochs, args.decays):
        for held, left_out in HELD_OUT.items():
            branch = fit(~np.isin(meta["source"][train], left_out), epochs, decay)
            on = val_source == held
            loso.append({
                "epochs": epochs, "decay": decay, "held_out": held,
                "n": int(on.sum()), "left_out": list(left_out),
                "head": scores(mean_probs(branch, features.val_clean[:, on])[:, 1],
                               mean_probs(branch, features.val_masked[:, on])[:, 1],
                               val_gender[on]),
                "gender_v1": scores(reference["unmasked"][on], reference["masked"][on],
                                    val_gender[on]),
            })
            log(f"{epochs} epochs, decay {decay:g}, without {held}: {loso[-1]['head']}")

    def held_out_mean(setting: tuple[int, float]) -> float:
        return float(np.mean([value for r in loso if (r["epochs"], r["decay"]) == setting
                              for value in r["head"].values()]))

    # Ties go to fewer epochs and the smaller decay.
    epochs, decay = max(itertools.product(args.epochs, args.decays),
                        key=lambda s: (held_out_mean(s), -s[0], -s[1]))
    branch = fit(np.ones(len(train), bool), epochs, decay)
    onnx.save(with_head(trunk, branch, head), str(out_path))
    log(f"wrote {out_path} ({epochs} epochs, weight decay {decay:g})")

    crop_record = {}
    head_clean = mean_probs(branch, features.val_clean)[:, 1]
    head_masked = mean_probs(branch, features.val_masked)[:, 1]
    for name in HELD_OUT:
        on = val_source == name
        crop_record[name] = {
            "n": int(on.sum()),
            "joint": scores(gender_marginals(features.val_joint[on])[:, 1],
                            gender_marginals(features.val_masked_joint[on])[:, 1], val_gender[on]),
            "head": scores(head_clean[on], head_masked[on], val_gender[on]),
            "gender_v1": scores(reference["unmasked"][on], reference["masked"][on], val_gender[on]),
        }
        log(f"{name} validation crops: {crop_record[name]}")
    command = "python -m masksegx.training.train_gender " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    record: dict[str, Any] = {
        "source": args.source, "n_train": len(train), "pseudo_labelled": pseudo,
        "copies": args.copies,
        "epochs": epochs, "learning_rate": args.learning_rate, "seed": args.seed,
        "decay": decay, "loso": loso, "crops": crop_record,
        "commands": [*info["command"].split(" && "),
                     *([teachers_command(args.cache, args.teachers)] if args.teachers else []),
                     command],
    }
    if args.evaluate:
        with tempfile.TemporaryDirectory() as folder:
            before = Path(folder) / "before.onnx"
            onnx.save(trunk, str(before))
            record["pipeline"] = {
                name: run_evals(args.data, path, Path(folder) / name, wearing=False)
                for name, path in (("joint", before), ("head", out_path))}
    write_head_record(out_path, "gender", record, args.card, GENDER_SECTION,
                      section_markdown(record))
    return 0


def teachers_command(caches: list[Path], teachers: Path) -> str:
    """The :mod:`.teachers` command that wrote ``teachers`` (its zoom from the file's JSON)."""
    scores = json.loads(teachers.with_suffix(".json").read_text())
    return (f"python -m masksegx.training.teachers --data ../shared/data --cache "
            f"{' '.join(map(str, caches))} --out {teachers} --zooms {scores['zoom']:g}")


def _pipeline_rows(pipeline: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for run in RUNS:
        joint, head = pipeline["joint"][run], pipeline["head"][run]
        rows.append([run, str(head["n_images"]), f"{joint['gender_acc']:.4f}",
                     f"{head['gender_acc']:.4f}", f"{head['reference']['gender_acc']:.4f}"])
    return rows


def section_markdown(record: dict[str, Any]) -> str:
    """The model card's gender-head section."""
    begin, end = GENDER_SECTION
    pseudo = ", ".join(f"{source} {count}" for source, count in record["pseudo_labelled"].items())
    lines = [
        begin,
        "## Gender head",
        "",
        "Written by `python -m masksegx.training.train_gender` (its module docstring has the "
        "method). The file's output `gender` [N, 2] gives P(female, male) from "
        + ("one softmax layer of its own on the trunk's pooled features"
           if record["source"] == "pooled" else
           "a branch of its own (a trained copy of the trunk's last block, global average "
           "pooling, one softmax layer)")
        + "; `AttributePredictor` reads the gender from it. Trunk, joint output, coverage and "
        "the wearing head are unchanged.",
        "",
        f"Training: {record['n_train']} crops of the training splits (MTFL and UTKFace with "
        f"their labels; teacher pseudo-labels: {pseudo or 'none'}), each with a synthetic-mask "
        f"copy and {record['copies']} augmented copies; {record['epochs']} epochs, peak "
        f"learning rate {record['learning_rate']:g}, weight decay {record['decay']:g} (epochs and "
        "decay chosen on the table below: the best mean of its four columns for ours). "
        "Commands:",
        "",
        *(f"    {command}" for command in record["commands"]),
        "",
        "Leave-one-source-out (crop space: the caches' validation crops, mirror mean as the "
        "predictor; synthetic masks worn correctly; gender-v1 on the same crops and masks). "
        "Each head is trained without the held-out source; the trunk under it saw every source, "
        "so only the head's training is held out:",
        "",
        markdown_table(
            ["epochs", "weight decay", "held out", "n", "head", "head, masked", "gender-v1",
             "gender-v1, masked"],
            [[str(r["epochs"]), f"{r['decay']:g}", r["held_out"], str(r["n"]),
              f"{r['head']['unmasked']:.4f}",
              f"{r['head']['masked']:.4f}", f"{r['gender_v1']['unmasked']:.4f}",
              f"{r['gender_v1']['masked']:.4f}"]
             for r in record["loso"]]),
        "",
        "Crop-space validation of the shipped head (trained on everything) beside the joint "
        "softmax's gender marginal of the same file:",
        "",
        markdown_table(
            ["crops", "n", "joint marginal", "joint, masked", "head", "head, masked",
             "gender-v1", "gender-v1, masked"],
            [[name, str(r["n"]), f"{r['joint']['unmasked']:.4f}", f"{r['joint']['masked']:.4f}",
              f"{r['head']['unmasked']:.4f}", f"{r['head']['masked']:.4f}",
              f"{r['gender_v1']['unmasked']:.4f}", f"{r['gender_v1']['masked']:.4f}"]
             for name, r in record["crops"].items()]),
    ]
    if record.get("pipeline"):
        lines += [
            "",
            "As `masksegx eval-attr` scores it (validation faces, landmarks from masksegx's "
            "detector, the same faces and masks for every column):",
            "",
            markdown_table(["run", "n", "joint marginal (file before)", "gender head (this file)",
                            "gender-v1"], _pipeline_rows(record["pipeline"])),
        ]
    lines += ["", end]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
