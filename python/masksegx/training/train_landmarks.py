"""Train the landmark net (:class:`.nets.LNet`) and export ``ds_mtcnn_lnet.onnx``.

    python -m masksegx.training.train_landmarks --data ../shared/data \\
        --models python/masksegx/models --out python/masksegx/models [--cache DIR]
        [--samples-scale F] [--epochs N] [--lr LR] [--time-limit S] [--seed S] [--evaluate-only]

The cascade runs this net on the O-net's 48x48 crops of the faces it keeps and takes their
landmarks from it (:class:`masksegx.FaceDetector`). Samples (:mod:`.samples`, 48x48, half
mirrored, half of the faces wearing a synthetic mask), landmark crops only:

- drawn crops around every cuhk5pt training face (even 0-based lines) and ``attr/mtfl_train``
  face (side 0.8-1.25 of the face, centre moved by up to 0.2 of it, all five points inside),
  ``--samples-scale`` times :data:`DRAWN`;
- cascade crops: the shipped P- and R-net (``--models``) run on the same images; each squared
  R-net box with IoU >= 0.4 with a face and its five points inside is a sample (up to
  :data:`CASCADE_CROPS_PER_FACE` per face), the framing the net gets at detection time.

Validation: the held-out cuhk5pt lines (odd), the same two kinds of crops, once without and once
with synthetic masks; reported, nothing is selected on them. Loss: L1 on the landmark fractions
of the crop side. Adam, cosine decay from ``--lr`` over ``--epochs``; ``--time-limit`` stops
cleanly between batches. Writes ``ds_mtcnn_lnet.onnx`` into ``--out`` (the export checks of
:mod:`.train_detector`), the report ``ds_mtcnn_lnet.json`` (settings, counts, per-epoch losses,
evaluation; also the cache's ``lnet.json``) and the model card ``ds_mtcnn_lnet.md`` beside it.

Evaluation (:func:`evaluate`): the whole cascade (``--models`` P-, R- and O-net, native
backend) on the held-out cuhk5pt lines, NME with the O-net's landmarks and with this net's, and
with the standard MTCNN weights when ``--data``/models has them; once on the photos as they are
and once with a synthetic mask on each face (:class:`masksegx.eval.attributes.MaskPainter`:
a frontal template and colour per face, fixed by its path, worn correctly).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..detect import FaceDetector
from ..eval.attributes import MaskPainter
from ..eval.detection import evaluate_landmarks, read_cuhk
from ..eval.reference_detectors import STANDARD_MTCNN_MODELS
from ..eval.report import markdown_table
from . import samples as sampling
from .cascade import Cascade, OnnxNet, normalise
from .nets import LANDMARK_STAGE, build, count_parameters_and_macs
from .train_detector import export_onnx, log
from .tune_onet_landmarks import cascade_crops, concatenate

#: Drawn landmark crops at --samples-scale 1 (about 18 per training face).
DRAWN = 100_000
CASCADE_CROPS_PER_FACE = 4
BATCH = 128
#: Sample format (bump when the sampling changes, so caches are rebuilt).
FORMAT = 2

#: ``lnet.json``: settings, sample counts, per-epoch losses, export facts and the evaluation;
#: read back by ``--evaluate-only`` from an earlier run, so its shape is not checked.
Report = dict[str, Any]


def make_samples(args: argparse.Namespace, split: str, masked: bool) -> sampling.SampleSet:
    """Landmark crops of one split (module docstring); ``masked``: half the faces masked."""
    validation = split == "val"
    seed = args.seed + (1 if validation else 0) + (2 if masked else 0)
    drawn_count = int(round(args.samples_scale * DRAWN * (0.1 if validation else 1.0)))
    templates = sampling.mask_templates(args.data) if masked else []
    _, landmark_images = sampling.sources(args.data, validation)
    meta = {"drawn": drawn_count, "seed": seed, "split": split, "masked": masked,
            "format": FORMAT, "cascade_per_face": CASCADE_CROPS_PER_FACE,
            "pnet_rnet": [hashlib.sha256(
                (args.models / f"ds_mtcnn_{s}.onnx").read_bytes()).hexdigest()[:16]
                for s in ("pnet", "rnet")]}
    folder = args.cache / "samples" / f"{split}_{'masked' if masked else 'clean'}"
    quota = sampling.Quota(positive=0, part=0, negative=0, landmark=drawn_count, mined=0)
    drawn = sampling.cached(folder / "drawn", meta, lambda: sampling.generate(
        [], landmark_images, 48, quota, seed, templates))
    crops = sampling.cached(folder / "cascade", meta, lambda: cascade_crops(
        landmark_images,
        Cascade(*(OnnxNet(args.models / f"ds_mtcnn_{s}.onnx") for s in ("pnet", "rnet"))),
        seed + 10, CASCADE_CROPS_PER_FACE, templates))
    both = concatenate([drawn, crops])
    keep = both.has_landmarks
    log(f"{split} ({'masked' if masked else 'clean'}): {int(keep.sum())} landmark crops")
    return sampling.SampleSet(*(getattr(both, name)[keep] for name in (
        "images", "labels", "offsets", "landmarks", "has_landmarks")))


@torch.no_grad()
def mean_l1(net: nn.Module, data: sampling.SampleSet) -> float:
    net.eval()
    total = 0.0
    for start in range(0, len(data.labels), 1024):
        sl = slice(start, start + 1024)
        (predicted,) = net(normalise(data.images[sl]))
        total += float((predicted - torch.from_numpy(data.landmarks[sl])).abs().sum())
    return total / max(1, data.landmarks.size)


def train(net: nn.Module, train_set: sampling.SampleSet, val_sets: dict[str, sampling.SampleSet],
          args: argparse.Namespace) -> list[dict[str, object]]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * -(-len(train_set.labels) // BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    started = time.perf_counter()
    history: list[dict[str, object]] = []
    for epoch in range(1, args.epochs + 1):
        net.train()
        total, seen, stopped = 0.0, 0, False
        order = rng.permutation(len(train_set.labels))
        for start in range(0, len(order), BATCH):
            if time.perf_counter() - started > args.time_limit:
                stopped = True
                break
            index = np.sort(order[start : start + BATCH])
            (predicted,) = net(normalise(train_set.images[index]))
            loss = F.l1_loss(predicted, torch.from_numpy(train_set.landmarks[index]))
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch: Tensor.backward is unannotated
            optimiser.step()
            schedule.step()
            total += loss.item() * len(index)
            seen += len(index)
        record = {"epoch": epoch, "seconds": round(time.perf_counter() - started, 1),
                  "train_l1": total / max(1, seen),
                  "val_l1": {name: round(mean_l1(net, data), 6) for name, data in val_sets.items()},
                  "stopped_early": stopped}
        history.append(record)
        log(f"epoch {epoch}/{args.epochs} ({record['seconds']:.0f} s): train "
            f"{record['train_l1']:.5f} | val {record['val_l1']}")
        if stopped:
            log(f"time limit {args.time_limit:.0f} s reached")
            break
    return history


def evaluate(args: argparse.Namespace, lnet_path: Path) -> list[dict[str, object]]:
    """Held-out cuhk5pt NME rows (module docstring): ``{"landmarks", "clean", "masked"}``."""
    items = read_cuhk(args.data / "det" / "cuhk5pt" / "annotations.txt")[1::2]
    images = args.data / "det" / "cuhk5pt" / "images"
    ours = [args.models / f"ds_mtcnn_{s}.onnx" for s in ("pnet", "rnet", "onet")]
    standard = [args.data / "models" / name for name in STANDARD_MTCNN_MODELS]
    candidates = [
        ("ours, O-net landmarks", ours, False),
        ("ours, landmark net", ours + [lnet_path], False),
        ("ours, landmark net, mirror_landmarks=True", ours + [lnet_path], True),
    ]
    if all(path.is_file() for path in standard):
        candidates.append(("standard MTCNN weights", standard, False))
    prepare = MaskPainter(args.data / "masktemplates").landmark_item

    rows: list[dict[str, object]] = []
    for label, models, mirror in candidates:
        detector = FaceDetector(models, mirror_landmarks=mirror)

        def detect(image: np.ndarray,
                   detector: FaceDetector = detector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            found = detector(image)
            return found.boxes, found.scores, found.landmarks

        row: dict[str, object] = {
            "landmarks": label, "clean": evaluate_landmarks(items, images, detect),
            "masked": evaluate_landmarks(items, images, detect, prepare)}
        log(f"{label}: {row}")
        rows.append(row)
    return rows


def card(report: Report) -> str:
    """The model card (markdown) of the exported net, from ``report``."""
    last = report["history"][-1]
    rows = markdown_table(
        ("landmarks", "NME", "detected", "NME, masked", "detected, masked"),
        ([r["landmarks"], f"{r['clean']['nme']:.4f}", f"{r['clean']['detected']:.3f}",
          f"{r['masked']['nme']:.4f}", f"{r['masked']['detected']:.3f}"]
         for r in report["evaluation"]),
        ("left", "right", "right", "right", "right"),
    )
    epochs = markdown_table(
        ("epoch", "s", "train L1", "val L1 clean", "val L1 masked"),
        ([h["epoch"], f"{h['seconds']:.0f}", f"{h['train_l1']:.5f}",
          f"{h['val_l1']['clean']:.5f}", f"{h['val_l1']['masked']:.5f}"]
         for h in report["history"]),
        ("right",) * 5,
    )
    evaluated = (
        f"\nEvaluated again, with the net as shipped, by\n\n    {report['evaluated_by']}\n"
        if "evaluated_by" in report else ""
    )
    return f"""# ds_mtcnn_lnet: landmark net of the depthwise-separable MTCNN

File: `ds_mtcnn_lnet.onnx` (opset 13, dynamic batch). Input `input` [N, 3, 48, 48], RGB,
`(pixel - 127.5) / 128`: the O-net's crop of a face. Output `landmarks` [N, 10]: x1..x5, y1..y5
as fractions of the crop side, in the O-net's convention (`masksegx.detect` maps them into the
image from the box the O-net was given). Points: left eye, right eye, nose, left and right mouth
corner. Ops: Conv (standard, depthwise, 1x1), PRelu, MaxPool (ceil mode), Flatten, Gemm.

`masksegx.FaceDetector` runs it on the faces the O-net keeps, after the last NMS (a few per
photo), and takes their landmarks from it; with `mirror_landmarks=True` it also runs it on each
face's mirror image and takes the mean of the two answers (the mirrored one mapped back). The
O-net's own landmark head is used only for three-net model sets such as the standard MTCNN
weights.

Architecture (`masksegx.training.nets.LNet`): the O-net layout with a full-resolution 3x3 stem
(32 channels) and its 3x3 max-pool, depthwise-separable 3x3 blocks 32 -> 64 and 64 -> 96, a 2x2
conv to 128, FC 256, FC 10. {report['parameters']:,} parameters, {report['macs']:,}
multiply-adds per face (the O-net: 340,976 and 2,735,648).

## Why a separate net

Trained with face classification and box regression on one trunk, the O-net's landmarks stayed
coarse (held-out cuhk5pt NME 0.100 against the standard weights' 0.058) even after a second,
landmark-weighted pass. On the same samples, a trunk trained on landmarks alone fits far better,
and the detection half of the O-net (AP, recall) is left exactly as it was. The samples now
also use the cascade's pixel convention (`masksegx.training.samples`, format 3: the crop origin
is the box corner minus one pixel), and MTFL's 1-based points are made 0-based like cuhk5pt's;
each had put every point about 1 px right of and below the truth.

## Data

Landmark crops only, 48x48, from the training images: cuhk5pt even 0-based lines and
`attr/mtfl_train` (research use only), half of the faces wearing a synthetic MaskTheFace
template (`masksegx.synthesis.apply_mask`), half of the crops mirrored. Drawn crops (side 0.8-1.25
of the face, centre moved by up to 0.2 of it) plus cascade crops (the P- and R-net in `--models`:
squared boxes with IoU >= 0.4 and all five points inside, up to
{CASCADE_CROPS_PER_FACE} per face). No distillation: the labels are the datasets' own.
Samples: {report['samples']['train']:,} training crops; validation (held-out cuhk5pt lines)
{report['samples']['val_clean']:,} without and {report['samples']['val_masked']:,} with masks.

## Command

    {report['command']}

L1 loss on the fractions, Adam from {report['settings']['lr']} with cosine decay, batch {BATCH},
single torch thread on 2 shared CPU cores. Sampling {report['sampling_seconds']:.0f} s, training
{last['seconds']:.0f} s.

{epochs}

## Evaluation (held-out cuhk5pt lines, whole cascade, native backend)
{evaluated}
NME = mean point error / inter-ocular distance, on the {report['evaluation'][0]['clean']['n_images']}
held-out faces as photographed and with a synthetic mask on each (`masksegx.eval.attributes.MaskPainter`:
template and colour fixed by the image path, worn correctly). Detected = share of faces matched.

{rows}

Settings, sample counts, per-epoch losses and these scores: `ds_mtcnn_lnet.json`. ONNX export:
{report['export']['bytes']:,} bytes, onnxruntime vs torch max abs diff
{report['export']['max_abs_diff']:.1e}.

License: trained on research-only data (CUHK/MTFL); research use only.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m masksegx.training.train_landmarks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--models", type=Path, required=True,
                        help="folder with the P- and R-net that make the cascade crops")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("build/lnet"))
    parser.add_argument("--samples-scale", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--time-limit", type=float, default=3600.0,
                        help="seconds of training (sampling not counted)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluate-only", action="store_true",
                        help="no training: evaluate --out/ds_mtcnn_lnet.onnx again and rewrite "
                             "the card from the cache's lnet.json (after a cascade change)")
    args = parser.parse_args(argv)
    if args.evaluate_only:
        report: Report = json.loads((args.cache / "lnet.json").read_text())
        report["evaluated_by"] = "python -m masksegx.training.train_landmarks " + " ".join(
            sys.argv[1:] if argv is None else argv)
        return finish(args, report)
    torch.set_num_threads(1)  # on 2 shared cores more torch threads were far slower
    args.cache.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train_set = make_samples(args, "train", masked=True)
    val_sets = {"clean": make_samples(args, "val", masked=False),
                "masked": make_samples(args, "val", masked=True)}
    sampling_seconds = time.perf_counter() - started
    net = build(LANDMARK_STAGE)
    history = train(net, train_set, val_sets, args)
    torch.save(net.state_dict(), args.cache / "lnet.pt")
    export = export_onnx(net, LANDMARK_STAGE, args.out / "ds_mtcnn_lnet.onnx")
    parameters, macs = count_parameters_and_macs(net, (3, 48, 48))
    command = "python -m masksegx.training.train_landmarks " + " ".join(
        sys.argv[1:] if argv is None else argv)
    report = {"command": command, "settings": {k: str(v) for k, v in vars(args).items()},
              "parameters": parameters, "macs": macs,
              "samples": {"train": len(train_set.labels),
                          **{f"val_{k}": len(v.labels) for k, v in val_sets.items()}},
              "sampling_seconds": round(sampling_seconds, 1), "history": history,
              "export": export}
    return finish(args, report)


def finish(args: argparse.Namespace, report: Report) -> int:
    """Evaluate the exported net, then write the report and the model card."""
    report["evaluation"] = evaluate(args, args.out / "ds_mtcnn_lnet.onnx")
    for path in (args.cache / "lnet.json", args.out / "ds_mtcnn_lnet.json"):
        path.write_text(json.dumps(report, indent=1))
    (args.out / "ds_mtcnn_lnet.md").write_text(card(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
