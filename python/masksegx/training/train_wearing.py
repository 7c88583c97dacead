"""Train the attribute network's wearing head on real photos' face crops and add it to the model.

    python -m masksegx.training.attr_cache --data ../shared/data --out .data/attr_wear \\
        --sources facemask,ilc
    python -m masksegx.training.train_wearing --cache .data/attr_wear \\
        --model python/masksegx/models/attributes.onnx --data ../shared/data \\
        --card python/masksegx/models/attributes.md

Issue 13 asks for the wearing state trained and validated on real crops. The coverage level
alone cannot tell a mask under the nose from one worn correctly (both cover about half the
lower face), so the model gets a second output, ``wearing`` [N, 3] = P(none, incorrect,
correct), from a branch of its own: a copy of the trunk's last block (depthwise and 1x1
convolutions, max pooling; :func:`last_block`) on the same input, global average pooling and
one softmax layer. The copy starts from the trunk's weights and is trained with the layer
(AdamW, one-cycle schedule); its 4x4 input still knows where on the face the mask lies, which
the trunk's pooled features averaged away (a softmax layer on those, session 11's head,
cross-validated lower: docs/attributes.md). The trunk and the joint output do not change:
gender and coverage stay exactly as they were.

Training data: every crop of the cache's real sources (det/facemask and det/ilc2021, the three
labelled classes) in their training splits, plus ``--copies`` augmented copies of each
(:func:`~masksegx.training.train_attributes.augment`, alternating its default and strong
settings). A crop gives two rows, its own and its mirror image's (the two passes whose
softmaxes :class:`~masksegx.AttributePredictor` averages), an augmented copy one (it is flipped
at random already). The weight decay is chosen by 5-fold cross-validation over photos (the
faces of one photo, and their copies, in one fold); the branch is then trained on all training
crops.

With ``--data`` the new file is scored as ``masksegx eval-attr --facemask --ilc`` scores it
(validation crops, landmarks from RetinaFace on each face's neighbourhood), beside the
thresholds' rule of the file it started from; ``--card`` rewrites the model card's section
between the markers :data:`~masksegx.training.attr_report.WEARING_SECTION` from those
figures (``attr_report`` keeps that section when it rewrites the card). The head depends on
the trunk: run this again after every ``train_attributes`` run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..attributes import (
    METADATA_KEY,
    WEARING_STATES,
    AttributePredictor,
    expected_level,
    level_marginals,
    wearing_state,
)
from ..eval.report import markdown_table
from .attr_cache import read_cache
from .attr_report import WEARING_SECTION, write_head_record
from .branch_heads import (
    WEARING_HEAD,
    branch_inputs,
    branch_module,
    feature_session,
    fit_branch,
    photo_folds,
    predict,
    with_head,
    without_head,
)
from .train_attributes import AUGMENTATIONS, augment, log

#: Cache sources with real wearing labels (photos, not synthetic masks).
REAL_SOURCES = ("facemask", "ilc")
#: Weight decays tried by the cross-validation.
DECAYS = (1e-2, 5e-2)
#: Training of the branch: epochs over the rows, peak learning rate of the one-cycle schedule.
EPOCHS = 8
LEARNING_RATE = 1e-3
FOLDS = 5


def training_set(clean: np.ndarray, labels: np.ndarray, copies: np.ndarray,
                 copy_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows [M, C] and labels: both passes of each clean crop, the plain pass of each
    augmented copy (augmentation flips at random already)."""
    rows = np.concatenate([clean[0], clean[1], copies[0]])
    return rows, np.concatenate([labels, labels, copy_labels])


def cross_validate(template: torch.nn.Sequential, clean: np.ndarray, labels: np.ndarray,
                   folds: np.ndarray, copies: np.ndarray, copy_labels: np.ndarray,
                   copy_of: np.ndarray, decays: Sequence[float], epochs: int,
                   learning_rate: float) -> dict[float, float]:
    """Accuracy on the held-out clean crops per weight decay (branch inputs [2, N, C, H, W];
    training folds: their clean crops and augmented copies)."""
    scores = {}
    for decay in decays:
        right = 0
        for fold in range(int(folds.max()) + 1):
            train, test = folds != fold, folds == fold
            train_copies = folds[copy_of] != fold
            x, y = training_set(clean[:, train], labels[train], copies[:, train_copies],
                                copy_labels[train_copies])
            branch = fit_branch(template, x, y, decay, epochs, learning_rate)
            right += int((predict(branch, clean[:, test]) == labels[test]).sum())
        scores[decay] = right / len(labels)
        log(f"decay {decay:g}: cross-validated accuracy {scores[decay]:.4f}")
    return scores


def training_crops(caches: Sequence[Path], crop_size: int, padding: float
                   ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The labelled real crops (all splits) of the caches; ValueError when a cache's crops are
    not cut as the model's (crop size, padding)."""
    crops, metas = [], []
    for cache in caches:
        cache_crops, meta, info = read_cache(cache)
        if (info["crop_size"], info["padding"]) != (crop_size, padding):
            raise ValueError(f"cache: {cache} has crops of {info['crop_size']} px, padding "
                             f"{info['padding']}; the model expects {crop_size}, {padding}")
        keep = np.isin(meta["source"], REAL_SOURCES) & (meta["wearing"] >= 0)
        crops.append(cache_crops[keep])
        metas.append({key: value[keep] for key, value in meta.items()})
    if not crops or not sum(len(c) for c in crops):
        raise ValueError(f"cache: no labelled crops of {REAL_SOURCES} in {list(map(str, caches))}")
    return np.concatenate(crops), {key: np.concatenate([m[key] for m in metas]) for key in metas[0]}


def crop_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (truth, predicted), 1)
    return {"accuracy": float((predicted == truth).mean()), "n": int(len(truth)),
            "confusion": confusion.tolist()}


def pipeline_scores(data: Path, models: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """``eval-attr``'s wearing records (facemask and ILC validation crops, RetinaFace
    landmarks) for each named model file, on the same faces."""
    from ..eval.attributes import evaluate_wearing, facemask_faces, neighbourhood_landmarks
    from ..eval.reference_detectors import make_detector

    detector = make_detector("retinaface", data / "models")
    faces = {
        key: facemask_faces(data / folder / "images", data / folder / "annotations", split,
                            lambda image, box: neighbourhood_landmarks(detector, image, box))
        for key, folder, split in (("facemask", "det/facemask", "val"),
                                   ("ilc", "det/ilc2021", "ilc-val"))
    }
    out: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        predictor = AttributePredictor(path, threads=1)
        out[name] = {key: evaluate_wearing(found, predictor, missed)
                     for key, (found, missed) in faces.items()}
        both = [out[name][key] for key in faces]
        right = sum(r["wearing_acc"] * r["n_faces"] for r in both)
        out[name]["both"] = {"wearing_acc": right / sum(r["n_faces"] for r in both),
                             "n_faces": sum(r["n_faces"] for r in both)}
    return out


def section_markdown(record: dict[str, Any]) -> str:
    """The model card's wearing-head section."""
    begin, end = WEARING_SECTION
    lines = [
        begin,
        "## Wearing head",
        "",
        "Written by `python -m masksegx.training.train_wearing` (its module docstring has the "
        "method). The file's second output `wearing` [N, 3] gives P(none, incorrect, correct) "
        "from a branch of its own (a trained copy of the trunk's last block, global average "
        "pooling, one softmax layer); `AttributePredictor` reads the "
        "wearing state from it (the thresholds above stay in the file for files without a "
        "head). Trunk, joint output, gender and coverage are unchanged.",
        "",
        f"Training: {record['n_train']} real training crops (det/facemask and det/ilc2021 "
        f"training splits; {record['train_counts']} none / incorrect / correct) and "
        f"{record['copies']} augmented copies of each; {record['epochs']} epochs, peak learning "
        f"rate {record['learning_rate']:g}. Weight decay by {FOLDS}-fold cross-validation over "
        "photos:",
        "",
        markdown_table(["weight decay", "cross-validated accuracy"],
                       [[f"{float(d):g}", f"{a:.4f}"] for d, a in record["cv"].items()]),
        "",
        f"Chosen: {float(record['decay']):g}. Commands:",
        "",
        *(f"    {command}" for command in record["commands"]),
        "",
        "Crop-space validation (the caches' validation crops, mirror mean as the predictor):",
        "",
        markdown_table(
            ["crops", "n", "thresholds' rule", "wearing head"],
            [[name, str(record["crops"][name]["head"]["n"]),
              f"{record['crops'][name]['rule']['accuracy']:.4f}",
              f"{record['crops'][name]['head']['accuracy']:.4f}"]
             for name in ("facemask", "ilc", "both")]),
    ]
    pipeline = record.get("pipeline")
    if pipeline:
        lines += [
            "",
            "As `masksegx eval-attr --facemask det/facemask --ilc det/ilc2021 --models-dir "
            "models` scores it (validation crops, landmarks from RetinaFace on each face's "
            "neighbourhood; faces without landmarks left out), the same faces for both files:",
            "",
            markdown_table(
                ["crops", "n", "thresholds' rule (file before)", "wearing head (this file)"],
                [[name, str(pipeline["head"][name]["n_faces"]),
                  f"{pipeline['rule'][name]['wearing_acc']:.4f}",
                  f"{pipeline['head'][name]['wearing_acc']:.4f}"]
                 for name in ("facemask", "ilc", "both")]),
        ]
        for name, label in (("facemask", "facemask val"), ("ilc", "ILC val")):
            confusion = pipeline["head"][name]["confusion"]
            lines += ["", f"Wearing head, {label} (rows: truth):", "",
                      markdown_table(["truth \\ predicted", *WEARING_STATES],
                                     [[t, *(str(confusion[t][p]) for p in WEARING_STATES)]
                                      for t in WEARING_STATES])]
    lines += ["", end]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, nargs="+", required=True,
                        help="attr_cache folder(s) holding the facemask and ilc sources")
    parser.add_argument("--model", type=Path, required=True, help="the attributes.onnx to extend")
    parser.add_argument("--out", type=Path, help="where to write the new file (default: --model)")
    parser.add_argument("--copies", type=int, default=6, help="augmented copies per crop")
    parser.add_argument("--decays", type=float, nargs="+", default=list(DECAYS))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="score the new file as eval-attr does")
    parser.add_argument("--card", type=Path, help="model card whose wearing-head section to write")
    args = parser.parse_args(argv)
    import onnx

    out_path = args.out or args.model
    source = onnx.load(str(args.model))
    metadata = {p.key: p.value for p in source.metadata_props}
    settings = json.loads(metadata[METADATA_KEY])
    if settings.get("mirror_average"):
        raise ValueError(f"model: {args.model} averages the mirror image in its graph; give its "
                         "one-pass copy (train_attributes --single-pass)")
    trunk = without_head(source, WEARING_HEAD)
    crops, meta = training_crops(args.cache, int(settings["crop_size"]), float(settings["padding"]))
    train = meta["split"] == 0
    labels = meta["wearing"].astype(np.int64)
    log(f"{len(crops)} labelled real crops, {int(train.sum())} for training")

    torch.set_num_threads(2)
    session = feature_session(trunk, WEARING_HEAD)
    features, joint = branch_inputs(session, crops, settings)
    rng = np.random.default_rng(args.seed)
    train_index = np.flatnonzero(train)
    copies, copy_of = [], []
    for copy in range(args.copies):
        kind = "strong" if copy % 2 else "default"
        augmented = np.stack([augment(crops[i], rng, AUGMENTATIONS[kind]) for i in train_index])
        copies.append(branch_inputs(session, augmented, settings, mirror=False)[0])
        copy_of.append(np.arange(len(train_index)))
        log(f"copy {copy + 1}/{args.copies} ({kind})")
    copy_features = (np.concatenate(copies, axis=1) if copies
                     else np.zeros((1, 0, *features.shape[2:]), np.float32))
    copy_index = np.concatenate(copy_of) if copy_of else np.zeros(0, np.int64)

    folds = photo_folds(meta["name"][train], FOLDS, args.seed)
    template = branch_module(trunk, WEARING_HEAD)
    cv = cross_validate(template, features[:, train], labels[train], folds, copy_features,
                        labels[train][copy_index], copy_index, args.decays, args.epochs,
                        args.learning_rate)
    decay = max(cv, key=lambda d: (cv[d], -d))
    x, y = training_set(features[:, train], labels[train], copy_features,
                        labels[train][copy_index])
    branch = fit_branch(template, x, y, decay, args.epochs, args.learning_rate)
    onnx.save(with_head(trunk, branch, WEARING_HEAD), str(out_path))
    log(f"wrote {out_path} (weight decay {decay:g})")

    levels = expected_level(level_marginals(joint.astype(np.float64)))
    thresholds = settings["wearing_thresholds"]
    rule = np.array([WEARING_STATES.index(wearing_state(v, thresholds)) for v in levels])
    head = predict(branch, features)
    validation = meta["split"] == 1
    crops_record = {}
    for key, chosen in (("facemask", meta["source"] == "facemask"),
                        ("ilc", meta["source"] == "ilc"), ("both", np.ones(len(crops), bool))):
        mask = chosen & validation
        crops_record[key] = {"rule": crop_scores(rule[mask], labels[mask]),
                             "head": crop_scores(head[mask], labels[mask])}
    command = "python -m masksegx.training.train_wearing " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    record: dict[str, Any] = {
        "n_train": int(train.sum()), "copies": args.copies, "seed": args.seed,
        "epochs": args.epochs, "learning_rate": args.learning_rate,
        "train_counts": " / ".join(str(int((labels[train] == k).sum())) for k in range(3)),
        "cv": {str(d): a for d, a in cv.items()}, "decay": decay, "crops": crops_record,
        "commands": [*(f"python -m masksegx.training.attr_cache --data ../shared/data --out "
                       f"{cache} --sources facemask,ilc" for cache in args.cache), command],
    }
    if args.data is not None:
        before = out_path.with_name(out_path.stem + ".before.onnx")
        onnx.save(trunk, str(before))
        try:
            record["pipeline"] = pipeline_scores(args.data, {"rule": before, "head": out_path})
        finally:
            before.unlink()
    for key, scores in crops_record.items():
        log(f"{key}: rule {scores['rule']['accuracy']:.4f}, head {scores['head']['accuracy']:.4f}")
    write_head_record(out_path, "wearing", record, args.card, WEARING_SECTION,
                      section_markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
