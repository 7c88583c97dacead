"""Evaluate the shipped attribute model and write its model card + the ablation tables.

    python -m masksegx.training.attr_report --data ../shared/data \\
        --metrics python/masksegx/models/attributes_metrics.json \\
        --model python/masksegx/models/attributes.onnx --evals out/attr_eval \\
        --card python/masksegx/models/attributes.md --ablations docs/attributes_ablations.md

Runs ``masksegx eval-attr`` on the validation faces (MTFL lines 10, 20, ...; UTKFace every 10th
file; with and without synthetic masks; gender-v1 on the same faces), the wearing state on the
facemask validation crops (landmarks from RetinaFace, as in training), measures single-thread
latency per variant in onnxruntime (random weights of the same architecture; the time does not
depend on the values), and writes the markdown. CPU only; reads ``--data``. Every path it
writes is an argument (the command above rewrites the checkout's card and ablation page).

After a head was added to the file (:mod:`.train_wearing`, :mod:`.train_gender`), ``--refresh``
rewrites only the card's Summary and Results sections from new ``eval-attr`` runs of the file
(the other sections describe training runs whose inputs need not exist any more):

    python -m masksegx.training.attr_report --data ../shared/data --refresh \
        --metrics python/masksegx/models/attributes_metrics.json \
        --model python/masksegx/models/attributes.onnx --evals out/attr_eval \
        --card python/masksegx/models/attributes.md
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..eval.attributes import evaluate_attributes
from ..eval.report import markdown_table, write_json

#: A parsed JSON object: the training run's metrics (written by :mod:`.train_attributes`) or
#: an ``eval-attr`` result. Its shape is the writer's; nothing here checks it.
Json = dict[str, Any]

RUNS = {
    # name: (format, annotations, images, synthetic)
    "mtfl_val": ("mtfl", "attr/mtfl_train/annotations.txt", "attr/mtfl_train/images", False),
    "mtfl_val_masked": ("mtfl", "attr/mtfl_train/annotations.txt", "attr/mtfl_train/images", True),
    "utk_val": ("utk", "attr/utkface", "attr/utkface", False),
    "utk_val_masked": ("utk", "attr/utkface", "attr/utkface", True),
}


#: The evaluation command the card's Results section names.
EVAL_COMMAND = (
    "masksegx eval-attr --annotations attr/mtfl_train/annotations.txt --images "
    "attr/mtfl_train/images --format mtfl --split val --reference models/gender-v1.onnx "
    "[--synthetic-mask --templates masktemplates] [--facemask det/facemask --ilc det/ilc2021 "
    "--models-dir models]` and the same with `--format utk --annotations attr/utkface --images "
    "attr/utkface")


def run_evals(data: Path, model: Path, out: Path, wearing: bool = True) -> dict[str, Json]:
    """Run the ``eval-attr`` evaluation of each of :data:`RUNS`, writing ``out/<run>.json``;
    ``mtfl_val`` scores the wearing state on the facemask and ILC crops too unless
    ``wearing=False``."""
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, (fmt, annotation_file, images, synthetic) in RUNS.items():
        print(f"eval-attr {name}", flush=True)
        record = evaluate_attributes(
            data / annotation_file, data / images, fmt, "val", model=model,
            templates=data / "masktemplates" if synthetic else None,
            reference=data / "models/gender-v1.onnx",
            facemask=data / "det/facemask" if wearing and name == "mtfl_val" else None,
            ilc=data / "det/ilc2021" if wearing and name == "mtfl_val" else None,
            models_dir=data / "models" if wearing and name == "mtfl_val" else None,
        )
        write_json(out / f"{name}.json", record)
        results[name] = record
    return results


#: Markers of the card's wearing-head section, written by :mod:`.train_wearing`, and of its
#: gender-head section, written by :mod:`.train_gender`; this module keeps both when it
#: rewrites the card.
WEARING_SECTION = ("<!-- train_wearing: begin -->", "<!-- train_wearing: end -->")
GENDER_SECTION = ("<!-- train_gender: begin -->", "<!-- train_gender: end -->")
SECTIONS = (WEARING_SECTION, GENDER_SECTION)


def section(card: str, markers: tuple[str, str]) -> str | None:
    """The section between ``markers`` of a card's text, markers included (None without one)."""
    begin, end = markers
    if begin not in card or end not in card:
        return None
    return begin + card.split(begin, 1)[1].split(end, 1)[0] + end


def with_section(card: str, markers: tuple[str, str], text: str) -> str:
    """The card's text with its section between ``markers`` replaced by ``text``, or appended."""
    old = section(card, markers)
    if old is not None:
        return card.replace(old, text)
    return card.rstrip("\n") + "\n\n" + text + "\n"


def write_head_record(model: Path, head: str, record: Json, card: Path | None,
                      markers: tuple[str, str], text: str) -> None:
    """Write a trained head's ``record`` beside the model (``<stem>_<head>.json``) and, with
    ``card``, its section of the model card (``text``, between ``markers``)."""
    path = model.with_name(f"{model.stem}_{head}.json")
    path.write_text(json.dumps(record, indent=1, default=_plain) + "\n")
    if card is not None:
        card.write_text(with_section(card.read_text(encoding="utf-8"), markers, text),
                        encoding="utf-8")
        print(f"wrote the {head}-head section of {card}", flush=True)


def _plain(value: Any) -> Any:
    """NumPy scalars as JSON numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def latencies(variants: dict[str, Json], mirror: bool) -> dict[str, float]:
    """Median single-thread onnxruntime ms per face for each variant's architecture (with the
    mirror average inside the graph when the run exported it that way)."""
    try:
        import onnx  # noqa: F401 - write_onnx needs it: no latencies without the train extra

        from .._models import onnx_session
        from .attr_net import AttributeNet, ExportWrapper
        from .export import write_onnx
    except ImportError:
        return {}
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, entry in variants.items():
            v = entry["variant"]
            net = ExportWrapper(AttributeNet(v["width"], v["head"]), mirror=mirror).eval()
            path = Path(folder) / f"{name}.onnx"
            shape = (1, 3, v["size"], v["size"])
            write_onnx(net, shape, path, ["probs"], 17)
            out[name] = median_ms(onnx_session(str(path), 1), shape[0], 100)
    return out


def median_ms(session: Any, batch: int, rounds: int) -> float:
    """Median ms of ``rounds`` runs of an attribute net session on a random input of ``batch``
    crops (after 10 untimed runs)."""
    inputs = session.get_inputs()[0]
    size = inputs.shape[-1]
    blob = np.random.default_rng(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    for _ in range(10):
        session.run(None, {inputs.name: blob})
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        session.run(None, {inputs.name: blob})
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


VARIANT_COLUMNS = (
    "variant", "input", "width", "head", "loss", "x", "clean gender", "masked gender",
    "wearing (facemask val)", "level MAE (ffhq test)", "level MAE (synthetic)", "MMACs", "ms/face",
)


def variant_rows(metrics: Json, names: Iterable[str], lat: dict[str, float]) -> list[str]:
    rows: list[list[object]] = []
    for name in names:
        if name not in metrics["variants"]:
            continue
        entry = metrics["variants"][name]
        v, m = entry["variant"], entry["metrics"]
        rows.append([
            name, v["size"], v["width"], v["head"], v["loss"], v["x"],
            fmt(m["val_clean"]["gender_acc"]), fmt(m["val_masked"]["gender_acc"]),
            fmt(m["val_facemask"].get("wearing_acc")), fmt(m["val_ffhq"].get("level_mae"), 3),
            fmt(m["val_masked"].get("level_mae"), 3), f"{entry['macs'] / 1e6:.1f}",
            fmt(lat.get(name), 2),
        ])
    if not rows:
        return ["(none of these variants was trained in this run)"]
    return markdown_table(VARIANT_COLUMNS, rows).split("\n")


def ablation_markdown(metrics: Json, lat: dict[str, float]) -> str:
    lines = [
        "# Attribute network ablations",
        "",
        "Written by `python -m masksegx.training.attr_report` from the training run's "
        "`attributes_metrics.json`. All variants trained side by side on the same batches for the same time "
        f"({metrics['training']['seconds']} s, {metrics['training']['steps']} steps, "
        f"{metrics['training']['samples']} samples, device {metrics['training']['device']}"
        f"{', ' + metrics['training']['gpu'] if metrics['training'].get('gpu') else ''}). "
        "Scores are on the validation crops of the cache (aligned crops as stored, resized to the "
        "variant's input; "
        + ("crop and mirror averaged" if metrics["export"]["settings"].get("mirror_average")
           else "single pass, no mirror average: that run predates it")
        + "): clean gender = MTFL + UTKFace validation faces, masked gender = the "
        "same faces with a synthetic mask (coverage 1), wearing = facemask validation crops with "
        "thresholds fitted per variant on training crops, level MAE on ffhq_synthmask `test/` "
        "and on the synthetic masks. ms/face = single-thread onnxruntime, net only (crop and "
        "mirror image, as the predictor runs it), random weights of the same architecture, on "
        "the machine that wrote this file.",
        "",
        "## Table 2: loss terms (input 64, width 1.0, joint head, x = 1)",
        "",
        *variant_rows(metrics, ["ce", "ce_l1", "x1"], lat),
        "",
        "`ce` = x CE(gender) + CE(level); `ce_l1` = `ce` + 0.4 L1; `x1` = eq. 15 "
        "(0.4 L1 + 0.6 KL + x CE(gender)). Facemask crops add the set term in all three.",
        "",
        "## Gender weight x (eq. 15)",
        "",
        *variant_rows(metrics, ["x0.5", "x1", "x2"], lat),
        "",
        "## Table 1: head and input size / width (x = 1)",
        "",
        *variant_rows(metrics, ["x1", "separate", "s48", "s80", "s96", "w0.5"], lat),
        "",
        f"This run's choice: **{metrics['chosen']}** (rule: best mean of clean gender, masked "
        f"gender and wearing accuracy among the eq. 15 joint-head variants; the cheapest within "
        f"{metrics['selection']['tolerance']} of the best wins; candidates within it: "
        f"{', '.join(metrics['selection']['close'])}). The shipped file may come from a longer "
        "run of the leading variants: see `python/masksegx/models/attributes.md`.",
        "",
    ]
    return "\n".join(lines)


def x_choice(metrics: Json, ablation: Json) -> str:
    chosen_x = metrics["variants"][metrics["chosen"]]["variant"]["x"]
    for source, label in ((metrics, "this run"), (ablation, "the all-variant run")):
        names = [n for n in ("x0.5", "x1", "x2") if n in source["variants"]]
        if len(names) == 3:
            scores = ", ".join(f"x = {source['variants'][n]['variant']['x']}: "
                               f"{source['variants'][n]['score']:.4f}" for n in names)
            best = max(names, key=lambda n: source["variants"][n]["score"])
            return (f"**x = {chosen_x}**, chosen on validation data: in {label} the selection "
                    f"scores were {scores} (best: x = {source['variants'][best]['variant']['x']}"
                    "; see the ablations).")
    return f"**x = {chosen_x}** (no run compared x alternatives)."


def file_latency(model: Path, rounds: int = 300) -> float:
    """Median single-thread onnxruntime ms of one face through the attribute net file as it
    ships (heads included): a batch of the crop and its mirror image, the predictor's default."""
    from .._models import onnx_session

    return median_ms(onnx_session(str(model), 1), 2, rounds)


def has_wearing_head(model: Path) -> bool:
    """Whether the attribute net file has the wearing head's output."""
    from ..attributes import AttributePredictor

    return AttributePredictor(model).has_wearing_head


def summary_lines(metrics: Json, evals: dict[str, Json], lat: dict[str, float]) -> list[str]:
    """The card's Summary section: the issue-13 targets beside the model's ``eval-attr``
    figures (``evals``: :func:`run_evals` of the file as shipped, its heads included)."""
    real = real_wearing(evals)
    return [
        "## Summary",
        "",
        "Validation faces, full pipeline (issue 13 targets: gender >= 0.95 unmasked and >= "
        "0.92 with synthetic masks on MTFL val and on UTKFace val; wearing >= 0.92 on the real "
        "three-class crops):",
        "",
        markdown_table(("set", "this model", "gender-v1", "target"), [
            ["MTFL val", fmt(evals["mtfl_val"]["gender_acc"]),
             fmt(pooled_reference(evals, "mtfl_val")), "0.95"],
            ["MTFL val, synthetic mask", fmt(evals["mtfl_val_masked"]["gender_acc"]),
             fmt(pooled_reference(evals, "mtfl_val_masked")), "0.92"],
            ["UTKFace val", fmt(evals["utk_val"]["gender_acc"]),
             fmt(pooled_reference(evals, "utk_val")), "0.95"],
            ["UTKFace val, synthetic mask", fmt(evals["utk_val_masked"]["gender_acc"]),
             fmt(pooled_reference(evals, "utk_val_masked")), "0.92"],
            ["wearing, facemask + ILC val (3 classes)", fmt(real.get("wearing_acc")), "n/a",
             "0.92"],
        ]),
        "",
        f"Net {fmt(lat.get(metrics['chosen']), 2)} ms per face single-thread (onnxruntime, the "
        "crop and its mirror image), measured on the machine that wrote this card. Details "
        "below.",
        "",
    ]


def results_lines(metrics: Json, evals: dict[str, Json], lat: dict[str, float],
                  command: str) -> list[str]:
    """The card's Results section from ``evals`` (:func:`run_evals` of the file as shipped)."""
    chosen = metrics["variants"][metrics["chosen"]]
    real = real_wearing(evals)
    wearing = evals["mtfl_val"].get("wearing", {})
    wearing_ilc = evals["mtfl_val"].get("wearing_ilc", {})

    def gender_row(name: str, label: str) -> list[object]:
        e = evals[name]
        r = e.get("reference", {})
        return [label, e["n_images"], fmt(e["gender_acc"]), fmt(e["gender_acc_female"]),
                fmt(e["gender_acc_male"]), fmt(r.get("gender_acc")),
                fmt(r.get("gender_acc_female")), fmt(r.get("gender_acc_male"))]

    gender_table = markdown_table(
        ("faces", "n", "ours", "ours female", "ours male", "gender-v1", "gender-v1 female",
         "gender-v1 male"),
        [gender_row("mtfl_val", "MTFL val"),
         gender_row("mtfl_val_masked", "MTFL val, synthetic mask"),
         gender_row("utk_val", "UTKFace val (our detector)"),
         gender_row("utk_val_masked", "UTKFace val, synthetic mask")],
    )
    confusion_table = confusion_markdown(wearing)
    return [
        "## Results (validation faces, full pipeline from the original images)",
        "",
        f"`{command}` (one thread). gender-v1 = `shared/data/models/gender-v1.onnx` on the same "
        "faces, landmarks and masks (its dlib chip approximated from our 5 landmarks, see "
        "`masksegx.eval.attributes`).",
        "",
        gender_table,
        "",
        f"Unmasked MTFL + UTK validation: {fmt(pooled(evals, 'mtfl_val', 'utk_val'))}; with "
        f"synthetic masks: {fmt(pooled(evals, 'mtfl_val_masked', 'utk_val_masked'))} "
        "(targets per set: see Summary).",
        "",
        f"Wearing state on the facemask validation crops (landmarks from RetinaFace on the "
        f"face's neighbourhood; {wearing.get('n_missed', 'n/a')} faces without landmarks left "
        f"out): accuracy **{fmt(wearing.get('wearing_acc'))}** over "
        f"{wearing.get('n_faces', 'n/a')} faces.",
        "",
        confusion_table,
        "",
        *([f"On the det/ilc2021 validation crops (`--ilc det/ilc2021`, names ending in 0 or 1; "
           f"{wearing_ilc['n_missed']} faces without landmarks left out): accuracy "
           f"**{fmt(wearing_ilc['wearing_acc'])}** over {wearing_ilc['n_faces']} faces.", "",
           confusion_markdown(wearing_ilc), "",
           f"Both real sets together (three classes): **{fmt(real['wearing_acc'])}** over "
           f"{real['n_faces']} faces (target 0.92).", ""] if wearing_ilc else []),
        f"Level MAE (crop-space validation): ffhq_synthmask test "
        f"{fmt(chosen['metrics']['val_ffhq'].get('level_mae'), 3)}, real_dev "
        f"{fmt(chosen['metrics']['val_real_dev'].get('level_mae'), 3)}, synthetic "
        f"{fmt(chosen['metrics']['val_masked'].get('level_mae'), 3)}.",
        "",
        f"Latency: {fmt(evals['mtfl_val']['ms_per_face'], 2)} ms per face for the whole call "
        f"(alignment + net) in eval-attr; net alone {fmt(lat.get(metrics['chosen']), 2)} ms "
        "single-thread onnxruntime (see benchmarks/test_bench_attributes.py).",
        "",
    ]


def refreshed_card(card: str, metrics: Json, evals: dict[str, Json], lat: dict[str, float],
                   command: str) -> str:
    """``card`` with its Summary and Results sections rewritten from new ``evals`` (the rest,
    written from training runs whose inputs may be gone, unchanged)."""
    for heading, lines in (("## Summary", summary_lines(metrics, evals, lat)),
                           ("## Results", results_lines(metrics, evals, lat, command))):
        start = card.index("\n" + heading) + 1
        end = card.find("\n## ", start + 1)
        end = len(card) if end < 0 else end + 1
        card = card[:start] + "\n".join(lines) + ("\n" if end < len(card) else "") + card[end:]
    return card


def card_markdown(metrics: Json, evals: dict[str, Json], lat: dict[str, float], model: Path,
                  command: str, ablation: Json | None = None,
                  extra: dict[str, list[str]] | None = None, start: Json | None = None) -> str:
    """The model card. ``extra`` holds the issue-13 sections by name (``teachers``,
    ``commands``, ``baseline``, ``loso``, ``licenses``), each a list of markdown lines;
    ``start`` is the metrics of the run that made a fine-tune's start weights (its variants
    fill the input size and width section)."""
    sizes = start or metrics
    ablation = metrics if ablation is None else ablation
    extra = extra or {}
    fine_tune = metrics.get("fine_tune", {})
    chosen = metrics["variants"][metrics["chosen"]]
    v = chosen["variant"]
    settings = metrics["export"]["settings"]
    low, high = settings["wearing_thresholds"]
    stats = metrics["cache"]["stats"]
    training = metrics["training"]
    head = has_wearing_head(model)
    lines = [
        "# Attribute network (`attributes.onnx`)",
        "",
        "Gender and mask coverage from one trimmed, depthwise-separable VGG-11 (paper §2), used "
        "by `masksegx.AttributePredictor` / `masksegx.predict_attributes`.",
        "",
        *([("> **Fallback weights:** this file comes from a short CPU training (see Training); "
            "it makes inference, tests and this report real but is far from the targets. The "
            "GPU training command in `GPU_COMMANDS.md` replaces it."), ""]
          if training["device"] == "cpu" else []),
        *summary_lines(metrics, evals, lat),
        "## Model",
        "",
        f"- Variant `{metrics['chosen']}`: input {v['size']}x{v['size']}, channel width "
        f"{v['width']}, {v['head']} head, eq. 15 loss with x = {v['x']}; "
        f"{chosen['params']:,} parameters, {chosen['macs'] / 1e6:.1f} M multiply-adds; "
        f"{metrics['export']['bytes']:,} bytes; opset 17, float32, dynamic batch.",
        "- Trunk: VGG-11 convolutions 64, M, 128, M, 256, 256, M, 512, 512, M, 512, M with Conv8, "
        "FC and FC2 removed (times the width), every convolution but the first depthwise "
        "separable (3x3 depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU), global average pool, "
        "dropout 0.2, FC3 as a 1x1x22 convolution + softmax.",
        f"- Input: `align_face(image, landmarks, {settings['crop_size']}, padding="
        f"{settings['padding']})` (similarity transform of the 5 landmarks onto the ArcFace "
        f"template with a 20 % margin), area-resized to {v['size']}, BGR, "
        "`(pixel - 127.5) / 128`, NCHW. Output `probs` [N, 22]: female levels 0..10, then male"
        + ("; the graph averages the softmax of the crop and of its mirror image (both "
           "marginals are mirror-invariant; the latency below includes it). Weights: "
           "exponential moving average (decay 0.998) of the trained ones."
           if settings.get("mirror_average") else
           ". `AttributePredictor` (default `mirror=True`) averages the softmax of each crop "
           "and of its mirror image (both marginals are mirror-invariant), i.e. two passes "
           "of the net; all results and latencies below include it."),
        "- Marginals (eq. 11-13): P(female) = sum of outputs 1..11, P(male) = sum of 12..22, "
        "P(level l) = T_l + T_{l+11}; coverage = expected level.",
        *(["- Wearing head: a second output `wearing` [N, 3] from a branch on the trunk's last "
           "block's input, trained "
           "on real crops (section \"Wearing head\" below); `AttributePredictor` reads the "
           "wearing state from it. The thresholds' rule below stays in the file for readers "
           "without the head; every wearing figure in this card is the head's."]
          if head else []),
        f"- Wearing state{' without the head' if head else ''}: **none if "
        f"expected level < {low}, correct if >= {high}, incorrect "
        f"otherwise** (thresholds stored in the file's `masksegx_attributes` metadata). They "
        "were fitted on training predictions (facemask training crops, ffhq_synthmask "
        "`train/`, 2000 unmasked faces) by maximising accuracy on a 0.1 grid. The data behind "
        "the rule: with our coverage definition (share of the lower face, below the eye line "
        "inside the landmark face box, covered by the mask), ffhq_synthmask's correctly worn "
        "masks (cwm_) have levels 4-9 (mostly 5-7), incorrectly worn ones (iwm_) 1-5 (mostly "
        "3-4), unmasked faces 0.",
        "",
        "## Data",
        "",
        "Built by `python -m masksegx.training.attr_cache` (aligned crops + labels; "
        "validation never trained on):",
        "",
        markdown_table(("source", "faces", "labels", "validation"), [
            ["attr/mtfl_train", stats["mtfl"]["faces"], "gender, level 0", "every 10th line"],
            ["attr/utkface", f"{stats['utk']['faces']} (ages < 10 skipped: "
             f"{stats['utk']['under_10']}; no landmarks: {stats['utk']['no_landmarks']})",
             "gender, level 0", "every 10th file (sorted)"],
            ["seg/ffhq_synthmask", stats["ffhq"]["faces"], "level from the mask, wearing (cwm/iwm)",
             "`test/`"],
            ["seg/real_dev", stats["real_dev"]["faces"], "level from the mask", "every 10th file"],
            ["det/facemask crops", f"{stats['facemask']['faces']} (no landmarks: "
             f"{stats['facemask']['no_landmarks']})", "wearing class only: set-valued level "
             "likelihood (none {0}, incorrect {1..4}, correct {5..10})", "images ending in 1"],
            *([["det/ilc2021 crops", f"{stats['ilc']['faces']} (no landmarks: "
                f"{stats['ilc']['no_landmarks']})", "as facemask; `without_mask` training crops "
                "teacher-labelled", "names ending in 0 or 1"]] if "ilc" in stats else []),
            *([["det/cuhk5pt", stats["cuhk"]["faces"], "unmasked (level 0, wearing none), "
                "gender from the teachers", "odd 0-based lines"]] if "cuhk" in stats else []),
            ["synthetic", "on the fly", "half of the mtfl/utk training draws get a MaskTheFace "
             "template (colour or texture; worn correctly with p 0.6, else slid down), level from "
             "the synthetic mask", "fixed synthetic masks on the validation faces"],
        ]),
        "",
        "**Distillation:** landmarks of ffhq_synthmask, real_dev, the facemask and ILC crops "
        "come from the reference RetinaFace (MobileNet-0.25, `retinaface_mnet025_512.onnx`), "
        "i.e. the training alignment is distilled from a reference detector. UTKFace's come "
        "from RetinaFace too in the caches before issue 13, which misplaces the faces that "
        "fill UTKFace's 128 px chips: many UTKFace training crops were zoomed onto parts of "
        "faces. `attr_cache` now takes them from masksegx's own detector (the face nearest the "
        "image centre, as eval-attr finds them). At inference the landmarks come from "
        "masksegx's own detector.",
        "",
        "## Training",
        "",
        "```",
        *metrics["cache"]["command"].split(" && "),
        *extra.get("commands", []),
        metrics["command"],
        "```",
        "",
        *([f"**Fine-tune:** from `{fine_tune['start_from']}` (the H200 model described under "
           "Input size and width), BatchNorm statistics frozen (the export folds them into "
           f"the convolutions); augmentation `{fine_tune['augment']}` "
           f"({fine_tune['augmentation']}); training sources left out: "
           f"{', '.join(fine_tune['excluded_sources']) or 'none'}.", ""]
          if fine_tune.get("start_from") else []),
        *([f"(The output files were copied into `python/masksegx/models/`. The ablations and "
           f"the choice of the leading variants come from the all-variant run `"
           f"{ablation['command']}`.)", ""] if ablation is not metrics else []),
        f"{training['steps']} steps of batch {training['batch']} ({training['samples']} "
        f"samples) in {training['seconds']} s on {training['device']}"
        f"{' (' + training['gpu'] + ')' if training.get('gpu') else ''}, torch "
        f"{training['torch']}. AdamW (lr {training['lr']}, "
        + (f"weight decay {training['weight_decay']} on the kernels"
           if "weight_decay" in training else "weight decay 5e-4")
        + ", 100 warm-up "
        "steps, cosine decay over the time limit), bf16 autocast on CUDA. Loss (eq. 15): "
        "0.4 L1(expected level - level) + 0.6 KL(Gaussian(level, sigma 1) || P(level)) + "
        "x CE(gender) + set term, each term averaged over the samples that have its label. "
        + x_choice(metrics, ablation),
        "",
        *results_lines(metrics, evals, lat, command),
        *extra.get("teachers", []),
        *extra.get("candidate", []),
        *extra.get("loso", []),
        *extra.get("licenses", []),
        "## Input size and width",
        "",
        "Variants of the run that produced the "
        + ("start weights" if fine_tune.get("start_from") else "shipped file")
        + " (same batches, crop-space "
        "validation scores; selection score = mean of clean gender, masked gender and wearing):",
        "",
        *variant_rows(sizes, list(sizes["variants"]), lat),
        "",
        "The paper feeds 224x224; our crops are stored at 96 (the data's faces are small: "
        "median inter-ocular distance 30-41 px in MTFL, UTKFace chips 128 px), so larger inputs "
        "would only upsample. The shipped variant is the cheapest whose selection score is "
        f"within {sizes['selection']['tolerance']} of the best (rule in "
        "`masksegx.training.train_attributes`): "
        + size_reason(sizes, lat)
        + " Full ablations (input "
        "48-96, width, heads, losses, x): `docs/attributes_ablations.md`.",
        "",
    ]
    return "\n".join(lines)


def size_reason(metrics: Json, lat: dict[str, float]) -> str:
    variants, chosen = metrics["variants"], metrics["chosen"]
    best = max(variants, key=lambda n: variants[n]["score"])
    if best == chosen:
        return f"`{chosen}` also has the best score ({variants[chosen]['score']:.4f})."
    gap = variants[best]["score"] - variants[chosen]["score"]
    cost = variants[best]["macs"] / variants[chosen]["macs"]
    return (f"`{best}` scored {gap:.4f} higher ({variants[best]['score']:.4f} vs "
            f"{variants[chosen]['score']:.4f}) for {cost:.1f}x the multiply-adds, so "
            f"`{chosen}` ships.")


def pooled_reference(evals: dict[str, Json], *names: str) -> float:
    if not all("reference" in evals[n] for n in names):
        return math.nan
    total = sum(evals[n]["n_images"] for n in names)
    accuracy: float = sum(evals[n]["reference"]["gender_acc"] * evals[n]["n_images"] for n in names) / total
    return accuracy


def pooled(evals: dict[str, Json], *names: str) -> float:
    total = sum(evals[n]["n_images"] for n in names)
    accuracy: float = sum(evals[n]["gender_acc"] * evals[n]["n_images"] for n in names) / total
    return accuracy


def confusion_markdown(wearing: Json) -> str:
    return markdown_table(
        ("truth \\ predicted", "none", "incorrect", "correct"),
        ([truth, *row.values()] for truth, row in wearing.get("confusion", {}).items()),
    )


def real_wearing(evals: dict[str, Json]) -> Json:
    """Wearing-state scores pooled over the facemask and ILC validation crops (the real
    three-class set of issue 13): accuracy, face count, summed confusion table."""
    sets = [evals["mtfl_val"][key] for key in ("wearing", "wearing_ilc") if key in evals["mtfl_val"]]
    if not sets:
        return {}
    states = list(sets[0]["confusion"])
    confusion = {t: {p: sum(w["confusion"][t][p] for w in sets) for p in states} for t in states}
    n_faces = sum(w["n_faces"] for w in sets)
    correct = sum(confusion[s][s] for s in states)
    return {"wearing_acc": correct / n_faces, "n_faces": n_faces, "confusion": confusion,
            "n_missed": sum(w["n_missed"] for w in sets)}


#: eval-attr runs of the leave-one-source-out table: (held-out source, training folder name,
#: unmasked run, masked run).
LOSO_RUNS = (("MTFL", "no_mtfl", "mtfl_val", "mtfl_val_masked"),
             ("UTKFace", "no_utk", "utk_val", "utk_val_masked"))


def loso_markdown(loso: Path) -> list[str]:
    """The leave-one-source-out section from ``loso/<no_X>/`` (attributes_metrics.json and the
    eval-attr JSON of the held-out source)."""
    rows: list[list[object]] = []
    described: list[str] = []
    for label, folder, clean, masked in LOSO_RUNS:
        if not (loso / folder / f"{clean}.json").is_file():
            continue
        metrics = json.loads((loso / folder / "attributes_metrics.json").read_text())
        training = metrics["training"]
        described.append(
            f"`{folder}`: `{metrics['command']}` ({training['steps']} steps of batch "
            f"{training['batch']}, {training['samples']} samples, {training['seconds']} s; "
            f"left out: {', '.join(metrics['fine_tune']['excluded_sources'])})")
        for name, kind in ((clean, "unmasked"), (masked, "synthetic mask")):
            record = json.loads((loso / folder / f"{name}.json").read_text())
            ours, theirs = record["gender_acc"], record["reference"]["gender_acc"]
            rows.append([f"{label} val, {kind}", record["n_images"], fmt(ours), fmt(theirs),
                         "yes" if ours >= theirs else "no"])
    if not rows:
        return []
    return [
        "## Leave-one-source-out",
        "",
        "Each run trains without the held-out source and is scored on that source's validation "
        "faces with `eval-attr` (same faces, landmarks and masks for both columns):",
        "",
        markdown_table(("held-out faces", "n", "ours (trained without the source)",
                        "gender-v1", "at least gender-v1"), rows),
        "",
        "The shipped weights saw MTFL and UTKFace training faces, so a fine-tune from them is "
        "not held out: these runs start **from scratch** (random weights) with the same recipe "
        "(teacher labels, strong augmentation, real wearing crops) on one CPU core for a few "
        "minutes, a small fraction of the shipped model's training (370 s on an H200, 2.8 M "
        "samples). They measure what the data teaches a short run, not the shipped model: "
        "compare them to gender-v1, not to the tables above. det/cuhk5pt is left out with MTFL "
        "(its photos come from the same lfw_5590 / net_7876 collections).",
        "",
        *[f"- {line}" for line in described],
        "",
    ]


def candidate_markdown(evals: dict[str, Json], candidate: Json, candidate_evals: dict[str, Json],
                       commands: list[str],
                       variants: Sequence[tuple[Json, dict[str, Json]]] = ()) -> list[str]:
    """A trained candidate that did not ship (it did not beat this file on every card figure):
    its recipe, commands and the same eval-attr runs beside this file's; ``variants`` are
    further runs of the same recipe with other settings (metrics, evals), one line each."""
    others = []
    for metrics, scores in variants:
        wearing = real_wearing(scores)
        others += [
            f"Variant `{metrics['command']}` ({metrics['training']['samples']} samples, "
            f"augmentation `{metrics['fine_tune']['augment']}`): MTFL val "
            f"{fmt(scores['mtfl_val']['gender_acc'])}, masked "
            f"{fmt(scores['mtfl_val_masked']['gender_acc'])}; UTKFace val "
            f"{fmt(scores['utk_val']['gender_acc'])}, masked "
            f"{fmt(scores['utk_val_masked']['gender_acc'])}; wearing facemask val "
            f"{fmt(scores['mtfl_val']['wearing']['wearing_acc'])}, ILC val "
            f"{fmt(scores['mtfl_val']['wearing_ilc']['wearing_acc'])}, both "
            f"{fmt(wearing.get('wearing_acc'))}.", ""]
    rows: list[list[object]] = []
    for name, title in (("mtfl_val", "MTFL val"), ("mtfl_val_masked", "MTFL val, synthetic mask"),
                        ("utk_val", "UTKFace val"), ("utk_val_masked", "UTKFace val, synthetic mask")):
        rows.append([title, fmt(evals[name]["gender_acc"]),
                     fmt(candidate_evals[name]["gender_acc"]),
                     fmt(evals[name]["reference"]["gender_acc"])])
    for key, title in (("wearing", "wearing, facemask val"), ("wearing_ilc", "wearing, ILC val")):
        if key in evals["mtfl_val"] and key in candidate_evals["mtfl_val"]:
            rows.append([title, fmt(evals["mtfl_val"][key]["wearing_acc"]),
                         fmt(candidate_evals["mtfl_val"][key]["wearing_acc"]), "n/a"])
    ours, theirs = real_wearing(evals), real_wearing(candidate_evals)
    if ours and theirs:
        rows.append(["wearing, facemask + ILC val", fmt(ours["wearing_acc"]),
                     fmt(theirs["wearing_acc"]), "n/a"])
    fine_tune, training = candidate["fine_tune"], candidate["training"]
    low, high = candidate["export"]["settings"]["wearing_thresholds"]
    return [
        "## Issue 13 fine-tune (trained, not shipped)",
        "",
        "```",
        *candidate["cache"]["command"].split(" && "),
        *commands,
        candidate["command"],
        "```",
        "",
        f"From this file's weights (`--start-from`; BatchNorm statistics frozen, the export "
        f"folds them into the convolutions), {training['steps']} steps of batch "
        f"{training['batch']} ({training['samples']} samples) in {training['seconds']} s on one "
        f"CPU core (lr {training['lr']}, cosine): UTKFace crops re-aligned with masksegx's "
        "detector, ILC and det/cuhk5pt faces added, teacher pseudo-labels "
        f"({', '.join(f'{k} {v}' for k, v in fine_tune['pseudo_labelled'].items())} faces), "
        f"augmentation `{fine_tune['augment']}` ({fine_tune['augmentation']}), ILC training "
        f"crops in the wearing-state training and threshold fit (refitted: {low} / {high}). "
        "The same `eval-attr` runs as above (its one-pass export: "
        "`--single-pass` of the run's file gives the same probabilities):",
        "",
        markdown_table(("faces", "this file", "fine-tune", "gender-v1"), rows),
        "",
        *others,
        "It gains on UTKFace (mostly the re-aligned UTKFace crops) but loses on MTFL and on the "
        "facemask wearing state, and so does the variant above, so neither ships (rule: beat "
        "this file on unmasked and masked gender and on wearing). The consistency loss "
        "between a face and its masked copy (`--consistency`): docs/attributes.md.",
        "",
    ]


def teacher_markdown(teachers: Json, metrics: Json) -> list[str]:
    """The teachers section: their crop-space accuracy and what the pseudo-label rule kept
    (``teachers`` = the JSON of :mod:`.teachers`, plus an optional ``note`` paragraph)."""
    rows = []
    for key, entry in teachers["crop_space"].items():
        rows.append([key.replace("_", " "), entry["n"], fmt(entry["gender_v1"]),
                     fmt(entry["mini_xception"]), fmt(entry["mean"]), fmt(entry["kept"], 3),
                     fmt(entry["kept_accuracy"])])
    fine_tune = metrics.get("fine_tune", {})
    zooms = ", ".join(f"{z}: {fmt(a)}" for z, a in teachers.get("zoom_training_accuracy",
                                                                 {}).items())
    return [
        "## Teachers and pseudo-labels",
        "",
        "- `gender-v1.onnx` (dlib's gender classifier, Cydral Technology; **CC0-1.0**): 32x32 "
        "dlib chip cut from the aligned crop with the crop's landmarks.",
        "- `gender_mini_XCEPTION.21-0.95.hdf5` (oarriaga/face_classification, IMDB-trained; "
        "**MIT**): the Keras graph rebuilt in PyTorch from the HDF5 file "
        "(`masksegx.training.teachers`, h5py); 64x64 grayscale of the aligned crop zoomed out by "
        f"{teachers['zoom']} (chosen on 2000 gender-labelled *training* crops; accuracy per zoom: "
        f"{zooms}), mean over the crop and its mirror.",
        "",
        "Both on the cache's gender-labelled crops (training and validation faces of MTFL and "
        "UTKFace; crop space, not the eval-attr pipeline). kept = share of faces where the "
        f"teachers agree and their mean P(male) is at least {teachers['pseudo_margin']} from "
        "0.5 (the pseudo-label rule), accuracy = the mean's accuracy on those:",
        "",
        markdown_table(("faces", "n", "gender-v1", "mini-Xception", "mean", "kept",
                        "kept accuracy"), rows),
        "",
        *([teachers["note"], ""] if "note" in teachers else []),
        "Pseudo-labels: the unmasked training faces without a gender label (det/cuhk5pt even "
        "0-based lines, facemask and ILC `without_mask` training crops) get the teachers' mean "
        "P(male) as a soft target where the rule keeps them: "
        + (", ".join(f"{source} {count}" for source, count in
                     fine_tune.get("pseudo_labelled", {}).items()) or "none")
        + " faces. They train with and without synthetic masks (level 0 when unmasked): the "
        "mask hides what the teachers saw, the student learns gender from what stays visible. "
        "The masked sets (masked_unlabeled/rwmfd, the masked crops of seg/real_dev, facemask "
        "and ILC) are not teacher-labelled: the teachers see poorly through masks. rwmfd is not "
        "used (no labels of any kind).",
        "",
    ]


LICENSES = [
    "## Licenses of the training data and teachers",
    "",
    "- attr/mtfl_train, det/cuhk5pt: CUHK / MTFL data, research use only.",
    "- attr/utkface: non-commercial research only (UTKFace terms).",
    "- seg/ffhq_synthmask: FFHQ faces (CC BY-NC-SA) with MaskedFace-Net masks, non-commercial.",
    "- det/facemask: the Kaggle face-mask detection set, CC0.",
    "- det/ilc2021: **no license stated** in the source repository (photos from the web); "
    "used for research and training as the data README allows, said here as it asks.",
    "- seg/real_dev: MIT repository, photos collected from the web by its authors (see the "
    "data README).",
    "- Teachers: gender-v1 CC0-1.0; gender_mini_XCEPTION MIT.",
    "",
    "The weights are therefore for research and non-commercial use.",
    "",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--metrics", type=Path, required=True,
                        help="attributes_metrics.json of the training run")
    parser.add_argument("--model", type=Path, required=True, help="the attributes.onnx to evaluate")
    parser.add_argument("--evals", type=Path, required=True,
                        help="folder for the evaluation JSON (read back with --skip-eval)")
    parser.add_argument("--card", type=Path, required=True, help="model card to write")
    parser.add_argument("--ablations", type=Path, help="ablation page to write (from "
                        "--ablation-metrics, else --metrics)")
    parser.add_argument("--start-metrics", type=Path,
                        help="a fine-tune's start run metrics (its variants table)")
    parser.add_argument("--teachers", type=Path, help="teachers' scores (teachers.py JSON)")
    parser.add_argument("--candidate-variants", type=Path, nargs="*", default=[],
                        help="folders of further candidate runs (as --candidate), one line each")
    parser.add_argument("--candidate", type=Path,
                        help="folder of a trained candidate that did not ship: its "
                        "attributes_metrics.json and eval-attr JSON (run names as --evals)")
    parser.add_argument("--loso", type=Path,
                        help="leave-one-source-out folder: no_mtfl/, no_utk/ with "
                        "attributes_metrics.json and the held-out eval-attr JSON")
    parser.add_argument("--commands", type=Path,
                        help="text file: the commands between the cache and the training "
                        "(teachers), one per line, for the card")
    parser.add_argument("--ablation-metrics", type=Path,
                        help="metrics JSON of the run with all variants, for the ablation "
                        "tables (default: --metrics)")
    parser.add_argument("--skip-eval", action="store_true", help="reuse the JSON in --evals")
    parser.add_argument("--refresh", action="store_true",
                        help="rewrite only the card's Summary and Results sections (after a "
                        "head was trained: train_wearing, train_gender)")
    args = parser.parse_args(argv)
    metrics = json.loads(args.metrics.read_text())
    if args.skip_eval:
        evals = {name: json.loads((args.evals / f"{name}.json").read_text()) for name in RUNS}
    else:
        evals = run_evals(args.data, args.model, args.evals)
    if args.refresh:
        chosen = metrics["chosen"]
        lat = {chosen: file_latency(args.model)}
        args.card.write_text(refreshed_card(args.card.read_text(), metrics, evals, lat,
                                            EVAL_COMMAND))
        print(f"wrote the Summary and Results of {args.card}")
        return 0
    ablation = (json.loads(args.ablation_metrics.read_text()) if args.ablation_metrics
                else metrics)
    variants = {**ablation["variants"], **metrics["variants"]}
    # The predictor averages each crop with its mirror by default (in the graph or in Python):
    # time two passes.
    lat = latencies(variants, True)
    start = json.loads(args.start_metrics.read_text()) if args.start_metrics else None
    if start is not None:
        lat.update({name: ms for name, ms in latencies(start["variants"], True).items()
                    if name not in lat})
    extra: dict[str, list[str]] = {"licenses": LICENSES}
    commands = ([line for line in args.commands.read_text().splitlines() if line]
                if args.commands else [])
    candidate = (json.loads((args.candidate / "attributes_metrics.json").read_text())
                 if args.candidate else None)
    if args.teachers:
        extra["teachers"] = teacher_markdown(json.loads(args.teachers.read_text()),
                                             candidate or metrics)
    if candidate is not None:
        def run_record(folder: Path) -> tuple[Json, dict[str, Json]]:
            return (json.loads((folder / "attributes_metrics.json").read_text()),
                    {name: json.loads((folder / f"{name}.json").read_text()) for name in RUNS})

        extra["candidate"] = candidate_markdown(
            evals, candidate, run_record(args.candidate)[1], commands,
            [run_record(folder) for folder in args.candidate_variants])
    else:
        extra["commands"] = commands
    if args.loso:
        extra["loso"] = loso_markdown(args.loso)
    card = card_markdown(metrics, evals, lat, args.model, EVAL_COMMAND,
                         ablation if args.ablation_metrics else None, extra, start)
    old_card = args.card.read_text() if args.card.is_file() else ""
    for markers in SECTIONS:
        kept = section(old_card, markers)
        if kept is not None:
            card = with_section(card, markers, kept)
    args.card.write_text(card)
    if args.ablations:
        args.ablations.parent.mkdir(parents=True, exist_ok=True)
        args.ablations.write_text(ablation_markdown(ablation, lat))
    (args.evals / "summary.json").write_text(json.dumps(
        {"evals": evals, "latency_ms": lat, "chosen": metrics["chosen"]}, indent=1) + "\n")
    print(f"wrote {args.card}" + (f" and {args.ablations}" if args.ablations else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
