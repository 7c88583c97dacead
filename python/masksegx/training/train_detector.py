"""Train the depthwise-separable MTCNN, export ONNX and write the model card.

    python -m masksegx.training.train_detector --data ../shared/data --out python/masksegx/models \\
        --stage all [--epochs N] [--device cpu|cuda] [--samples-scale F] [--cache DIR] [--seed S]
        [--landmark-weight W]

Stages run in MTCNN order; R- and O-net samples include the earlier stages' detections on the
training images (hard-negative mining), so ``--stage rnet`` needs a trained P-net in the cache
(``--stage all`` does everything). Losses (Zhang et al. 2016): cross-entropy on positives and
negatives with online hard example mining (the hardest 70% of each batch), mean squared error of
the box offsets on positives and parts, and of the landmarks on landmark samples (O-net only:
P- and R-net have no landmark output). Weights cls/box/landmark: 1/0.5/0 (P, R), 1/0.5/W (O),
W = ``--landmark-weight`` (default 100: the landmark MSE, in fractions of the crop, is two orders
of magnitude below the classification loss; at MTCNN's weight 1 the landmarks stayed coarse:
held-out cuhk5pt NME 0.17, against 0.13 / 0.12 / 0.11 with weight 10 / 30 / 100 and 12 / 16 /
24 epochs, all with 16k mirrored landmark samples; detection AP improved alongside).
Adam (lr 1e-3), cosine decay to 0 over the run, batch 256.

``--distill NET [NET ...]``: the classification targets of positives and negatives become the
mean face probability of those ONNX nets (the stage's interface) on each training crop, a soft
cross-entropy in place of the hard labels (knowledge distillation from an ensemble: e.g. the
shipped O-net, which knows masked faces, with the standard MTCNN O-net, which knows crowds).

Held-out samples (for the card's accuracies) come from the validation images only: det/facemask
images whose number ends in 1 and the odd lines of det/cuhk5pt (see :mod:`.samples`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import textwrap
import time
from collections.abc import Collection, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._models import onnx_session
from ..boxes import iou_inclusive
from ..eval.report import markdown_table
from ..io import read_image
from ..synthesis import MaskTemplate
from . import box_conventions
from . import samples as sampling
from .cascade import Cascade, OnnxNet, normalise
from .export import max_abs_difference, write_onnx
from .nets import (
    INPUT_SIZE,
    LANDMARK_STAGE,
    OUTPUT_NAMES,
    STAGES,
    DetectorNet,
    DetectorStage,
    build,
    count_parameters_and_macs,
)

#: Samples per stage at --samples-scale 1 (CPU-sized; MTCNN used millions).
QUOTAS = {
    "pnet": sampling.Quota(positive=25000, part=25000, negative=60000, landmark=25000),
    "rnet": sampling.Quota(positive=10000, part=10000, negative=14000, landmark=10000, mined=14000),
    "onet": sampling.Quota(positive=6000, part=6000, negative=7000, landmark=16000, mined=8000),
}
EPOCHS = {"pnet": 20, "rnet": 10, "onet": 24}
#: Held-out samples per stage, as a fraction of the training quota.
VALIDATION_FRACTION = 0.15
DEFAULT_LANDMARK_WEIGHT = 100.0
#: How ``--distill`` combines its nets' face probabilities.
DISTILL_RULES = ("mean", "max")
OHEM_KEEP = 0.7
BATCH = 256
LEARNING_RATE = 1e-3
OPSET = 13
#: The op set our C++ executor implements; the export is checked against it.
ALLOWED_OPS = {"Conv", "PRelu", "MaxPool", "Flatten", "Reshape", "Gemm", "Softmax"}
CARD = "ds_mtcnn.md"
#: Results entries under these keys (an ``rnet`` or ``onet`` entry of another run) are the
#: close-up pass's R- and O-net, ``ds_mtcnn_{rnet,onet}_closeup.onnx``: the card lists their
#: commands, data and figures beside the cascade's nets.
CLOSE_UP_STAGES = ("rnet_closeup", "onet_closeup")
CARD_STAGES = (*STAGES, *CLOSE_UP_STAGES)
#: Faces narrower or shorter than this are left out of the cascade recall check (min face 20).
RECALL_MIN_FACE = 20
DEFAULT_COMMAND = ("python -m masksegx.training.train_detector --data ../shared/data "
                   "--out python/masksegx/models --stage all")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


#: Loss weights (classification, box, landmark).
LossWeights = tuple[float, float, float]
#: One batch on the device: images, labels, box offsets, landmarks, has-landmarks flags, and the
#: face-probability targets of the classified samples (the labels themselves unless distilling).
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
#: ``results.json`` in the cache: per stage :func:`run_stage`'s facts and its command, the
#: cascade check, free-text ``notes`` and ``sections``. Read back from earlier runs (older
#: formats included), so its shape is not checked.
Results = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Losses and evaluation


def loss_weights(stage: str, landmark_weight: float) -> LossWeights:
    """(classification, box, landmark) weights; only O-net has a landmark output."""
    return 1.0, 0.5, landmark_weight if stage == "onet" else 0.0


def multitask_losses(outputs: Sequence[torch.Tensor], labels: torch.Tensor, offsets: torch.Tensor,
                     landmarks: torch.Tensor, has_landmarks: torch.Tensor, targets: torch.Tensor,
                     ohem: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(classification, box, landmark) losses of one batch; ``targets``: the face probability
    each classified sample is trained towards (its label, or the distillation ensemble's)."""
    logits, reg = outputs[0], outputs[1]
    zero = logits.sum() * 0.0
    classified = labels >= 0
    cls = zero
    if classified.any():
        face = targets[classified]
        log_p = F.log_softmax(logits[classified], dim=1)
        ce = -(face * log_p[:, 1] + (1 - face) * log_p[:, 0])
        if ohem:
            ce = ce.topk(max(1, int(OHEM_KEEP * len(ce)))).values
        cls = ce.mean()
    boxed = labels != sampling.LABEL_NEGATIVE
    box = F.mse_loss(reg[boxed], offsets[boxed]) if boxed.any() else zero
    landmark = zero
    if len(outputs) == 3 and has_landmarks.any():
        landmark = F.mse_loss(outputs[2][has_landmarks], landmarks[has_landmarks])
    return cls, box, landmark


def weighted_sum(weights: LossWeights,
                 parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The training loss: (classification, box, landmark) losses times their weights."""
    return weights[0] * parts[0] + weights[1] * parts[1] + weights[2] * parts[2]


def batches(data: sampling.SampleSet, device: str, order: np.ndarray | None = None,
            targets: np.ndarray | None = None) -> Iterator[Batch]:
    """Batches of ``data`` in ``order``; ``targets`` (float32 [N]): the classification targets,
    default the labels."""
    order = np.arange(len(data)) if order is None else order
    targets = data.labels.astype(np.float32) if targets is None else targets
    for start in range(0, len(order), BATCH):
        index = order[start : start + BATCH]
        yield (
            normalise(data.images[index]).to(device),
            torch.from_numpy(data.labels[index]).to(device),
            torch.from_numpy(data.offsets[index]).to(device),
            torch.from_numpy(data.landmarks[index]).to(device),
            torch.from_numpy(data.has_landmarks[index]).to(device),
            torch.from_numpy(targets[index]).to(device),
        )


def ensemble_targets(nets: Sequence[Path], data: sampling.SampleSet,
                     rule: str = "mean") -> np.ndarray:
    """float32 [N]: the face probability of the ONNX ``nets`` on the crops of ``data``, combined
    by ``rule``: "mean", or "max" (a face where any net sees one)."""
    if rule not in DISTILL_RULES:
        raise ValueError(f"rule: expected one of {DISTILL_RULES}, got {rule!r}")
    each = np.zeros((len(nets), len(data)), np.float32)
    for k, path in enumerate(nets):
        session = onnx_session(str(path), 0)
        for start in range(0, len(data), 4096):
            crops = normalise(data.images[start : start + 4096]).numpy()
            each[k, start : start + 4096] = session.run(["prob"], {"input": crops})[0][:, 1]
    combined: np.ndarray = each.max(axis=0) if rule == "max" else each.mean(axis=0)
    return combined


@torch.no_grad()
def evaluate(net: DetectorNet, data: sampling.SampleSet, weights: LossWeights,
             device: str) -> dict[str, float]:
    """Mean losses (no OHEM) and classification accuracy at p(face) > 0.5 over ``data``."""
    net.eval()
    totals = np.zeros(4)
    correct = {"positive": [0, 0], "negative": [0, 0]}
    for images, labels, offsets, landmarks, has_landmarks, targets in batches(data, device):
        outputs = net.logits(images)
        parts = multitask_losses(outputs, labels, offsets, landmarks, has_landmarks, targets,
                                 ohem=False)
        weighted = weighted_sum(weights, parts)
        totals += len(labels) * np.array([float(weighted)] + [float(p) for p in parts])
        face = outputs[0].argmax(dim=1)
        for name, label in (("positive", 1), ("negative", 0)):
            chosen = labels == label
            correct[name][0] += int((face[chosen] == label).sum())
            correct[name][1] += int(chosen.sum())
    losses = totals / max(1, len(data))
    right = correct["positive"][0] + correct["negative"][0]
    seen = correct["positive"][1] + correct["negative"][1]
    return {
        "loss": losses[0], "cls_loss": losses[1], "box_loss": losses[2], "landmark_loss": losses[3],
        "accuracy": right / max(1, seen),
        "positive_recall": correct["positive"][0] / max(1, correct["positive"][1]),
        "negative_accuracy": correct["negative"][0] / max(1, correct["negative"][1]),
    }


def train(net: DetectorNet, train_set: sampling.SampleSet, val_set: sampling.SampleSet, stage: str,
          weights: LossWeights, epochs: int, device: str, seed: int,
          learning_rate: float = LEARNING_RATE,
          targets: np.ndarray | None = None) -> list[dict[str, object]]:
    """Train ``net`` in place with the loss ``weights`` (see :func:`loss_weights`) towards the
    classification ``targets`` of the training samples (default their labels). Returns the
    per-epoch history: the running (OHEM) training loss, validation metrics (against the labels),
    and for the last epoch also full training-set metrics."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net.to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    steps = epochs * -(-len(train_set) // BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    history: list[dict[str, object]] = []
    for epoch in range(1, epochs + 1):
        net.train()
        started = time.perf_counter()
        running, seen = 0.0, 0
        for images, labels, offsets, landmarks, has_landmarks, face in batches(
            train_set, device, rng.permutation(len(train_set)), targets
        ):
            parts = multitask_losses(
                net.logits(images), labels, offsets, landmarks, has_landmarks, face, ohem=True
            )
            loss = weighted_sum(weights, parts)
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch: Tensor.backward is unannotated
            optimiser.step()
            schedule.step()
            running += loss.item() * len(labels)
            seen += len(labels)
        seconds = time.perf_counter() - started
        val = evaluate(net, val_set, weights, device)
        metrics = {"epoch": epoch, "seconds": seconds, "running_loss": running / max(1, seen),
                   "val": val}
        if epoch == epochs:  # a full pass without OHEM costs a third of an epoch: once is enough
            metrics["train"] = evaluate(net, train_set, weights, device)
        history.append(metrics)
        log(f"{stage} epoch {epoch}/{epochs} ({seconds:.1f} s): running OHEM loss "
            f"{metrics['running_loss']:.4f} | val loss {val['loss']:.4f} acc {val['accuracy']:.4f} "
            f"(pos {val['positive_recall']:.3f}, neg {val['negative_accuracy']:.3f})")
    return history


# ---------------------------------------------------------------------------------------------
# Export


def export_onnx(net: nn.Module, stage: str, path: Path) -> dict[str, object]:
    """Export with the TorchScript exporter (opset 13, dynamic batch; P-net dynamic H/W), check
    the op set and compare with onnxruntime; returns {"ops", "max_abs_diff", "bytes"}."""
    net = net.cpu().eval()
    side = INPUT_SIZE[stage]
    dynamic = {0: "batch", 2: "height", 3: "width"} if stage == "pnet" else {0: "batch"}
    output_axes = {0: "batch", 2: "h", 3: "w"} if stage == "pnet" else {0: "batch"}
    names = OUTPUT_NAMES[stage]
    model = write_onnx(net, (1, 3, side, side), path, names, OPSET,
                       {"input": dynamic, **{name: output_axes for name in names}},
                       quiet=DeprecationWarning)
    ops = sorted({node.op_type for node in model.graph.node})
    if not set(ops) <= ALLOWED_OPS:
        extra = sorted(set(ops) - ALLOWED_OPS)
        raise RuntimeError(f"{path.name}: ops {extra} outside the executor's {ALLOWED_OPS}")
    shapes = [(2, 3, side, side), (1, 3, 37, 50)] if stage == "pnet" else [(3, 3, side, side)]
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(shape, generator=generator) * 2 - 1 for shape in shapes]
    max_diff = max_abs_difference(net, onnx_session(str(path), 0), inputs, names)
    log(f"exported {path} ({path.stat().st_size} bytes, ops {ops}); "
        f"onnxruntime vs torch max abs diff {max_diff:.2e}")
    return {"ops": ops, "max_abs_diff": max_diff, "bytes": path.stat().st_size}


# ---------------------------------------------------------------------------------------------
# Stages


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def onnx_state_dict(stage: str, path: Path) -> dict[str, torch.Tensor]:
    """The weights of an exported ``ds_mtcnn_<stage>.onnx`` as the stage's state dict: the
    initializers keep the parameter names, except the PReLU slopes the exporter renamed
    (``onnx::PRelu_N``, shape [C, 1, 1]), which fill the remaining slopes in order."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    found = {item.name: numpy_helper.to_array(item) for item in model.graph.initializer}
    renamed = iter(sorted(
        (name for name in found if name.startswith("onnx::PRelu_")),
        key=lambda name: int(name.rsplit("_", 1)[1]),
    ))
    state = {}
    for name, tensor in build(stage).state_dict().items():
        value = found[name] if name in found else found[next(renamed)]
        state[name] = torch.from_numpy(value.copy()).reshape(tensor.shape)
    return state


def load_net(stage: str, cache: Path | None, start: Path | None = None) -> nn.Module:
    """The stage's net from ``cache/<stage>.pt``, else from ``start/ds_mtcnn_<stage>.onnx``."""
    weights = None if cache is None else cache / f"{stage}.pt"
    net = build(stage)
    if weights is not None and weights.is_file():
        net.load_state_dict(torch.load(weights, map_location="cpu"))
    elif start is not None:
        net.load_state_dict(onnx_state_dict(stage, start / f"ds_mtcnn_{stage}.onnx"))
    else:
        raise SystemExit(f"{weights} not found: train {stage} first (or use --stage all)")
    return net.eval()


class YuNetTeacher:
    """YuNet-n pseudo-labels (boxes as inclusive pixels, landmarks) for an image path, cached
    in a JSON file so that reruns do not run the teacher again."""

    def __init__(self, models_dir: Path, cache_file: Path, score_threshold: float = 0.6) -> None:
        from ..eval.reference_detectors import REFERENCE_MODELS, YuNetDetector

        self._detector = YuNetDetector(models_dir / REFERENCE_MODELS["yunet"],
                                       score_threshold=score_threshold)
        self._file = cache_file
        self._labels: dict[str, list[list[float]]] = (
            json.loads(cache_file.read_text()) if cache_file.is_file() else {}
        )
        self._unsaved = 0

    def __call__(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        key = str(path)
        if key not in self._labels:
            boxes, _, points = self._detector(read_image(path))
            assert points is not None  # YuNet always gives landmarks
            boxes = boxes.astype(np.float64)
            boxes[:, 2:] -= 1  # exclusive ends -> the inclusive boxes of the samples
            rows = np.concatenate([boxes, points.reshape(-1, 10)], axis=1)
            self._labels[key] = rows.round(2).tolist()
            self._unsaved += 1
            if self._unsaved >= 200:
                self.save()
        rows = np.array(self._labels[key], np.float64).reshape(-1, 14)
        return rows[:, :4], rows[:, 4:].reshape(-1, 5, 2)

    def save(self) -> None:
        self._file.write_text(json.dumps(self._labels))
        self._unsaved = 0


def augmentation_settings(augment: Collection[str]) -> dict[str, object]:
    """What ``--augment`` does, for the sample cache's key."""
    settings: dict[str, object] = {}
    if "zoom" in augment:
        settings.update(zoom_in=sampling.ZOOM_IN_FRACTION, zoom_in_range=sampling.ZOOM_IN_RANGE)
    if "photometric" in augment:
        settings["photometric"] = sampling.PHOTOMETRIC_PROBABILITY
    if "border" in augment:
        settings.update(border_negatives=sampling.BORDER_NEGATIVE_FRACTION,
                        border_largest=sampling.BORDER_NEGATIVE_LARGEST)
    if "realzoom" in augment:
        settings.update(real_zoom_in=sampling.ZOOM_IN_FRACTION, zoom_in_range=sampling.ZOOM_IN_RANGE)
    if "frame" in augment:
        settings.update(frame_negatives=sampling.FRAME_NEGATIVE_FRACTION,
                        frame_largest=sampling.FRAME_NEGATIVE_LARGEST,
                        frame_shift=sampling.FRAME_NEGATIVE_SHIFT)
    return settings


def run_stage(stage: DetectorStage, args: argparse.Namespace,
              templates: list[MaskTemplate]) -> dict[str, object]:
    """Generate (or load cached) samples, train, save weights, export; returns the card facts."""
    index = STAGES.index(stage)
    detector: Cascade | None = None
    detector_id: list[str] | None = None
    if index > 0:
        cache, onnx_folder = (None, args.miners) if args.miners else (args.cache, args.start_from)
        earlier = [load_net(s, cache, onnx_folder) for s in STAGES[:index]]
        detector = Cascade(*earlier)
        detector_id = [
            file_digest(cache / f"{s}.pt") if cache and (cache / f"{s}.pt").is_file()
            else file_digest(onnx_folder / f"ds_mtcnn_{s}.onnx")
            for s in STAGES[:index]
        ]
    teacher = (
        YuNetTeacher(args.data / "models", args.cache / "teacher_labels.json")
        if args.teacher else None
    )
    doubtful = (
        YuNetTeacher(args.data / "models", args.cache / f"teacher_labels_{args.doubtful_score:g}.json",
                     args.doubtful_score)
        if teacher and args.doubtful_score is not None else None
    )
    quota = QUOTAS[stage].scaled(args.samples_scale)
    sets: dict[str, sampling.SampleSet] = {}
    started = time.perf_counter()
    splits = (("train", 1.0, args.seed), ("val", VALIDATION_FRACTION, args.seed + 1))
    for split, fraction, seed in splits:
        split_quota = quota.scaled(fraction)
        augment = args.augment if split == "train" else ()
        meta = {"stage": stage, "split": split, "quota": vars(split_quota), "seed": seed,
                "detector": detector_id,
                "format": 5 if args.common_boxes else 4 if teacher or augment else 3,
                **({"teacher": _teacher_key(args.teacher)} if teacher else {}),
                **({"doubtful_score": args.doubtful_score} if doubtful else {}),
                **({"common_boxes": box_conventions.settings()} if args.common_boxes else {}),
                **({"augment": augmentation_settings(augment)} if augment else {})}
        box_images, landmark_images = sampling.sources(args.data, split == "val", teacher,
                                                        args.common_boxes, args.teacher, doubtful)
        for labeller in (teacher, doubtful):
            if labeller is not None:
                labeller.save()
        sets[split] = sampling.cached(
            args.cache / "samples" / stage / split, meta,
            partial(sampling.generate, box_images, landmark_images, INPUT_SIZE[stage],
                    split_quota, seed, templates, detector, augment),
        )
        log(f"{stage} {split} samples: {sets[split].counts()}")
    sampling_seconds = time.perf_counter() - started

    net = build(stage)
    if args.start_from is not None:
        net.load_state_dict(onnx_state_dict(stage, args.start_from / f"ds_mtcnn_{stage}.onnx"))
    started = time.perf_counter()
    weights = loss_weights(stage, args.landmark_weight)
    targets = (ensemble_targets(args.distill, sets["train"], args.distill_rule)
               if args.distill else None)
    history = train(net, sets["train"], sets["val"], stage, weights,
                    args.epochs or EPOCHS[stage], args.device, args.seed, args.learning_rate,
                    targets)
    training_seconds = time.perf_counter() - started
    torch.save(net.cpu().state_dict(), args.cache / f"{stage}.pt")
    export = export_onnx(net, stage, args.out / f"ds_mtcnn_{stage}.onnx")
    side = INPUT_SIZE[stage]
    counts = {
        name: count_parameters_and_macs(build(stage, separable), (3, side, side))
        for name, separable in (("separable", True), ("standard", False))
    }
    return {
        "samples": {split: data.counts() for split, data in sets.items()},
        "sampling_seconds": sampling_seconds, "training_seconds": training_seconds,
        "epochs": len(history), "final": history[-1], "export": export, "counts": counts,
        "loss_weights": weights, "mirrored_fraction": sampling.MIRRORED_FRACTION,
        "teacher": list(args.teacher), "augment": list(args.augment),
        "doubtful_score": args.doubtful_score if doubtful else None,
        "common_boxes": bool(args.common_boxes),
        "start_from": None if args.start_from is None else str(args.start_from),
        "miners": None if args.miners is None else str(args.miners),
        "distill": [str(path) for path in args.distill],
        **({"distill_rule": args.distill_rule} if args.distill else {}),
    }


def cascade_recall(prefix: Path, data: Path) -> dict[str, float]:
    """A training-side check of the whole cascade (``<prefix>_{pnet,rnet,onet}.onnx``) on the
    det/facemask validation images: min face 20, thresholds 0.6/0.7/0.7, this module's private
    cascade. A face (>= 20 px both sides) is found when a detection has IoU >= 0.5 with it; a
    detection is correct when it has IoU >= 0.5 with any face (of any size)."""
    cascade = Cascade(*(OnnxNet(f"{prefix}_{stage}.onnx") for stage in STAGES))
    found = {"all": [0, 0], "with_mask": [0, 0]}
    correct = detections = 0
    images = sampling.read_facemask(data, validation=True)
    for face_image in images:
        image = cv2.cvtColor(read_image(face_image.path), cv2.COLOR_BGR2RGB)
        boxes = cascade(image)
        faces = face_image.boxes
        detections += len(boxes)
        correct += sum(float(iou_inclusive(box[None], faces).max()) >= 0.5 for box in boxes)
        assert face_image.classes is not None  # read_facemask names every face
        for face, name in zip(faces, face_image.classes):
            if min(face[2] - face[0] + 1, face[3] - face[1] + 1) < RECALL_MIN_FACE:
                continue
            hit = len(boxes) > 0 and float(iou_inclusive(face[None], boxes).max()) >= 0.5
            for key in ("all",) + ((name,) if name == "with_mask" else ()):
                found[key][0] += int(hit)
                found[key][1] += 1
    return {
        "recall": found["all"][0] / max(1, found["all"][1]), "faces": found["all"][1],
        "with_mask_recall": found["with_mask"][0] / max(1, found["with_mask"][1]),
        "precision": correct / max(1, detections), "detections": detections,
        "images": len(images),
    }


def recall_check(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    checks = {"ours": cascade_recall(args.out / "ds_mtcnn", args.data)}
    reference = args.data / "models" / "mtcnn"
    if Path(f"{reference}_pnet.onnx").is_file():
        checks["reference"] = cascade_recall(reference, args.data)
    for name, check in checks.items():
        log(f"cascade check ({name}): recall {check['recall']:.3f} of {check['faces']} faces, "
            f"with_mask {check['with_mask_recall']:.3f}, precision {check['precision']:.3f} "
            f"of {check['detections']} detections")
    return checks


# ---------------------------------------------------------------------------------------------
# Model card


def print_counts() -> None:
    for stage in STAGES:
        side = INPUT_SIZE[stage]
        ours = count_parameters_and_macs(build(stage, True), (3, side, side))
        standard = count_parameters_and_macs(build(stage, False), (3, side, side))
        print(f"{stage} {side}x{side}: parameters {ours[0]:,} vs standard {standard[0]:,} "
              f"({ours[0] / standard[0]:.2f}x), multiply-adds {ours[1]:,} vs {standard[1]:,} "
              f"({ours[1] / standard[1]:.2f}x)")
    # The landmark net has no standard counterpart: the standard O-net does its job there.
    lnet = count_parameters_and_macs(build(LANDMARK_STAGE), (3, 48, 48))
    print(f"lnet 48x48 (per kept face): parameters {lnet[0]:,}, multiply-adds {lnet[1]:,} "
          f"({lnet[1] / standard[1]:.2f}x the standard O-net's)")


def stage_commands(results: Results) -> list[tuple[str, list[str]]]:
    """(command, stages it trained) in stage order; runs that predate the per-stage record were
    ``--stage all`` runs with the default command."""
    commands: dict[str, list[str]] = {}
    for stage in CARD_STAGES:
        if stage in results:
            commands.setdefault(results[stage].get("command", DEFAULT_COMMAND), []).append(stage)
    return list(commands.items())


def _teacher_key(sets: Sequence[str]) -> bool | list[str]:
    """The sample cache's key of ``--teacher``'s sets (``true`` for all of them, as the caches
    made before the sets could be chosen)."""
    return True if set(sets) == set(sampling.TEACHER_SOURCES) else list(sets)


def _stage_teacher_sets(value: object) -> list[str]:
    """One stage's ``teacher`` entry as set names (runs before the sets could be chosen
    stored ``true`` for all of them)."""
    if value is True:
        return list(sampling.TEACHER_SOURCES)
    return [str(name) for name in value] if isinstance(value, list) else []


def _teacher_sets(results: Results) -> list[str]:
    """The teacher sets any stage of a run used."""
    used = {name for stage in CARD_STAGES
            for name in _stage_teacher_sets(results.get(stage, {}).get("teacher"))}
    return [name for name in sampling.TEACHER_SOURCES if name in used]


#: Each teacher-labelled set as the card names it.
_TEACHER_SET_TEXT = {
    "rwmfd": "`masked_unlabeled/rwmfd` (research use; every "
             f"{sampling.TEACHER_SETS['rwmfd'][2]}th image in path order from index 3 held out)",
    "ffhq_synthmask": "`seg/ffhq_synthmask/train` crops (FFHQ, CC BY-NC-SA; the test crops unseen)",
    "utkface": "every 4th `attr/utkface` file outside its validation files (non-commercial "
               "research)",
}


def _teacher_data_lines(sets: Sequence[str]) -> list[str]:
    """The card's data bullets for stages trained with ``--teacher``."""
    lines = [
        "- `det/ilc2021` (**no license stated**; web photos; used for training): boxes of the",
        "  images whose name does not end in 0 or 1 (those are the validation split), plus the",
        "  faces YuNet-n finds there that overlap no annotated box (IoU < 0.3: background faces",
        "  the annotators left out), so that no negative is cut from them. Its crowds give the",
        "  R/O-nets' mined hard negatives.",
    ] if "ilc2021" in sets else []
    labelled = [_TEACHER_SET_TEXT[name] for name in sampling.TEACHER_SETS if name in sets]
    if labelled:
        text = (
            "YuNet-n (`models/yunet_n_dynamic.onnx`, Apache-2.0) as a **teacher**: its boxes "
            "(score >= 0.6) label images without boxes; its landmarks only place synthetic masks "
            f"there (no landmark samples). Sets: {', '.join(labelled)}. Negatives are cut only "
            "from teacher images with more than one face."
        )
        lines += textwrap.wrap(text, 88, initial_indent="- ", subsequent_indent="  ")
    return lines


def _doubtful_lines(results: Results) -> list[str]:
    """The card's data bullet for stages trained with ``--doubtful-score``."""
    scores = sorted({float(score) for stage in CARD_STAGES
                     if (score := results.get(stage, {}).get("doubtful_score"))})
    if not scores:
        return []
    text = (
        f"Doubtful teacher faces (det/ilc2021): where YuNet-n finds a face scored from "
        f"{' / '.join(f'{score:g}' for score in scores)} up to its threshold 0.6 that overlaps no "
        "labelled face, no negative is cut (IoU >= 0.3 with it), and no sample of it is trained "
        "on: faces the annotators and the teacher's threshold left out."
    )
    return textwrap.wrap(text, 88, initial_indent="- ", subsequent_indent="  ")


def _license_lines(teacher_sets: Sequence[str]) -> list[str]:
    """The card's license paragraph for a run that used ``teacher_sets``."""
    extra = {
        "ilc2021": "on det/ilc2021 (no license stated)",
        "ffhq_synthmask": "on FFHQ crops (non-commercial)",
        "utkface": "on UTKFace (non-commercial)",
        "rwmfd": "on RWMFD (research use)",
    }
    text = "Licenses: the weights are trained on research-only data (CUHK/MTFL) as well as CC0 data"
    used = [extra[name] for name in sampling.TEACHER_SOURCES if name in teacher_sets]
    if used:
        text += f", {', '.join(used)}, with YuNet-n (Apache-2.0) as the teacher"
    text += "; treat them as research use only."
    return textwrap.wrap(text, 88)


def _comma_names(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """An option's comma-separated names, each one of ``allowed``."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(set(names) - set(allowed))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected {what} from {', '.join(allowed)}, got {text!r}")
    return names


def _augmentations(text: str) -> tuple[str, ...]:
    """``--augment``'s value: comma-separated kinds from ``samples.AUGMENTATIONS``."""
    return _comma_names(text, sampling.AUGMENTATIONS, "kinds")


def _teacher_sources(text: str) -> tuple[str, ...]:
    """``--teacher``'s value: comma-separated sets from ``samples.TEACHER_SOURCES``."""
    return _comma_names(text, sampling.TEACHER_SOURCES, "sets")


def _stage_kinds(value: object) -> list[str]:
    """One stage's ``augment`` entry as kinds (runs before the kinds existed stored ``true``)."""
    if value is True:
        return list(sampling.DEFAULT_AUGMENTATIONS)
    return [str(kind) for kind in value] if isinstance(value, list) else []


def _augment_kinds(results: Results) -> list[str]:
    """The augmentations any stage of a run used."""
    used = {kind for stage in CARD_STAGES for kind in _stage_kinds(results.get(stage, {}).get("augment"))}
    return [kind for kind in sampling.AUGMENTATIONS if kind in used]


def _partial_options_lines(results: Results) -> list[str]:
    """A data bullet naming the stages of each option that not every trained stage used (a
    card whose nets come from different runs)."""
    trained = [stage for stage in CARD_STAGES if stage in results]
    used = {
        **{f"teacher set {name}": [s for s in trained
                                   if name in _stage_teacher_sets(results[s].get("teacher"))]
           for name in sampling.TEACHER_SOURCES},
        "one box convention": [s for s in trained if results[s].get("common_boxes")],
        "doubtful teacher faces": [s for s in trained if results[s].get("doubtful_score")],
        **{f"{kind} augmentation": [s for s in trained
                                    if kind in _stage_kinds(results[s].get("augment"))]
           for kind in sampling.AUGMENTATIONS},
    }
    parts = [f"{option} ({', '.join(stages)})" for option, stages in used.items()
             if stages and stages != trained]
    if not parts:
        return []
    text = f"Used by some stages only: {'; '.join(parts)}."
    return textwrap.wrap(text, 88, initial_indent="- ", subsequent_indent="  ")


def _distill_lines(results: Results) -> list[str]:
    """A data bullet per stage trained with ``--distill``: the nets whose mean face probability
    were its classification targets."""
    lines = []
    for stage in CARD_STAGES:
        nets = results.get(stage, {}).get("distill") or []
        if nets:
            names = ", ".join(f"`{Path(net).name}`" for net in nets)
            text = (f"Distillation ({stage}, `--distill`): its face / non-face targets are the mean "
                    f"face probability of {names} on each sample crop, not the labels.")
            lines += textwrap.wrap(text, 88, initial_indent="- ", subsequent_indent="  ")
    return lines


def _augment_lines(kinds: Sequence[str]) -> list[str]:
    """The card's data bullets for stages trained with ``--augment``."""
    lines = []
    if "zoom" in kinds:
        lines += [
            f"- Zoom-in (training samples): {sampling.ZOOM_IN_FRACTION:.0%} of the single-face "
            "images are cut to a window",
            f"  whose sides lie from {-sampling.ZOOM_IN_RANGE[0]:.0%} outside to "
            f"{sampling.ZOOM_IN_RANGE[1]:.0%} inside the face box (a tight crop",
            "  with chin or forehead cut off; the crops then show black beyond the window, as",
            "  the cascade pads the image).",
        ]
    if "photometric" in kinds:
        lines += [
            "- Photometric changes (training samples): blur, JPEG quality 15-60 and light/colour",
            f"  changes, each with probability {sampling.PHOTOMETRIC_PROBABILITY:g}.",
        ]
    if "border" in kinds:
        lines += [
            f"- Border negatives (training samples): {sampling.BORDER_NEGATIVE_FRACTION:.0%} of "
            "the negative crops overhang the",
            "  image's edge (black beyond it, as the cascade pads), up to "
            f"{sampling.BORDER_NEGATIVE_LARGEST:g} times its shorter side.",
        ]
    if "realzoom" in kinds:
        lines += [
            f"- Zoom-in on real photos (training samples): {sampling.ZOOM_IN_FRACTION:.0%} of the "
            "det/facemask and det/ilc2021",
            "  training photos with one face are cut as above (real masks in close-up); a zoomed",
            "  photo gives no negatives.",
        ]
    if "frame" in kinds:
        lines += [
            f"- Frame negatives (training samples): {sampling.FRAME_NEGATIVE_FRACTION:.0%} of the "
            "negative crops are squares of one to",
            f"  {sampling.FRAME_NEGATIVE_LARGEST:g} times the image's shorter side around its "
            f"centre (shifted by up to {sampling.FRAME_NEGATIVE_SHIFT:.0%} of",
            "  the side): the whole photo, small, in black, clear of every face.",
        ]
    return lines


def _common_boxes_lines() -> list[str]:
    """The card's data bullets for stages trained with ``--common-boxes``."""
    conventions = [*box_conventions.CONVENTIONS.items(), ("common", box_conventions.COMMON)]
    rows = [
        [name, f"{c.shift_x:+.3f}", f"{c.shift_y:+.3f}", f"{c.width:.3f}", f"{c.height:.3f}"]
        for name, c in conventions
    ]
    shifts = [c.shift_y for _, c in conventions]
    return [
        "- One box convention (`--common-boxes`, `masksegx.training.box_conventions`): each",
        "  source's boxes are measured against YuNet-n's on the same faces (median centre",
        "  shift in teacher widths/heights, width and height ratios; faces >= 20 px matched",
        "  at IoU >= 0.4) and redrawn in the convention of det/facemask + det/ilc2021 pooled,",
        "  the boxes the evaluation scores; the sources' boxes of the same face otherwise",
        f"  differ by up to {max(shifts) - min(shifts):.2f} of its height in their centres",
        "  (`python -m masksegx.training.box_conventions`):",
        "",
        markdown_table(("source", "shift x", "shift y", "width", "height"), rows),
        "",
    ]


def _close_up_lines(results: Results) -> list[str]:
    """The card's paragraph on the close-up pass's own nets, those the results hold."""
    nets = [(stage, f"{stage[0].upper()}-net") for stage in CLOSE_UP_STAGES if stage in results]
    if not nets:
        return []
    text = "; ".join(
        f"`ds_mtcnn_{stage}.onnx` ({stage} below): the {net} of the detector's close-up pass "
        f"(`FaceDetector(close_ups=True)`), same interface as the {net}"
        for stage, net in nets
    )
    return [*textwrap.wrap(text + ".", 88), ""]


def write_card(out: Path, results: Results) -> None:
    total_seconds = sum(
        results[stage]["sampling_seconds"] + results[stage]["training_seconds"]
        for stage in CARD_STAGES if stage in results
    )
    distilled = _distill_lines(results)
    lines = [
        "# ds_mtcnn: depthwise-separable MTCNN (P-, R-, O-net)",
        "",
        "Files: `ds_mtcnn_pnet.onnx`, `ds_mtcnn_rnet.onnx`, `ds_mtcnn_onet.onnx` (opset 13,",
        "dynamic batch, P-net dynamic height/width). Same interface as the reference",
        "`mtcnn_*.onnx` (facenet-pytorch): input `input` = RGB NCHW, `(pixel - 127.5) / 128`;",
        "P-net `reg` [N,4,h,w], `prob` [N,2,h,w] with h = floor((H-4)/2) - 3 (12x12 window,",
        "stride 2; the reference's ceil((H-2)/2) - 4 on even H, one cell fewer on odd H);",
        "R-net [N,3,24,24] -> `reg` [N,4], `prob` [N,2]; O-net [N,3,48,48] -> `reg`",
        "[N,4], `landmarks` [N,10] (x1..x5, y1..y5 as fractions of the box), `prob` [N,2];",
        "`prob` channel/column 1 = face. Difference from the reference graphs: R/O-net flatten",
        "in NCHW order (no Transpose). Ops used: Conv (standard, strided, depthwise, 1x1),",
        "PRelu, MaxPool (ceil mode), Flatten, Gemm, Softmax.",
        "",
        *_close_up_lines(results),
        "The shipped cascade takes its landmarks from a fourth net, `ds_mtcnn_lnet.onnx`, run",
        "on the O-net's crops of the faces it keeps (model card `ds_mtcnn_lnet.md`, trained by",
        "`masksegx.training.train_landmarks`); the O-net's `landmarks` output is what a",
        "three-net cascade returns.",
        "",
        "Architecture: the MTCNN layout (channel widths of Zhang et al. 2016) with every 3x3",
        "convolution after the first layer replaced by depthwise 3x3 + pointwise 1x1 + PReLU",
        "(paper §2, eq. 1-10); the 2x2 convs of R/O-net stay standard. The first 3x3 conv and",
        "the max-pool after it are one 4x4 stride-2 conv in each net (same window and stride,",
        "a quarter of the first layer's outputs and no full-resolution PReLU or pool: they were",
        "the larger part of the detector's time); the P-net's first layer has 16 channels",
        "(MTCNN: 10), the R-net's first two 16 and 32 (MTCNN: 28 and 48). Counts below are per",
        "12x12 / 24x24 / 48x48 input against the standard layout.",
        "",
        "## Status",
        "",
        "**A first, CPU-budget training** (2 cores, minutes per stage, tens of thousands of",
        "samples where MTCNN used millions). It shows the pipeline end to end; it is not yet",
        "tuned. Detection AP and landmark NME are the evaluation command's job; below are the",
        "held-out sample accuracies and a cascade recall/precision check. Retrain on a GPU with",
        "a larger `--samples-scale` for real use.",
        "",
        f"Whole run (sample generation + training, all stages): {total_seconds / 60:.1f} min.",
        "",
        "## Data",
        "",
        "- `det/facemask` (CC0): boxes of all faces, masked or not; images whose number ends",
        "  in 1 held out (validation). Positives, parts, random and mined negatives.",
        "- `det/cuhk5pt` (research only): box + 5 landmarks; odd 0-based lines held out (an",
        "  NME on cuhk5pt is uncontaminated only on those lines).",
        "- `attr/mtfl_train` (research only): 5 landmarks; box from the landmarks by",
        "  `masksegx.synthesis.estimate_face_box` (midline +- 1.15 inter-ocular distances,",
        "  0.85 eye-to-mouth heights above the eyes to 1.55 below).",
        "- Synthetic masks: half of the cuhk5pt/mtfl faces wear a MaskTheFace frontal template",
        "  (`masksegx.synthesis.apply_mask`, coverage 0.85-1, random colour half the time), so",
        "  positives and landmark samples include faces with nose and mouth covered.",
        "- Mirroring: half of the crops are mirrored left-right (exact box/landmark mirror, left",
        "  and right eyes and mouth corners swapped) for stages trained since sample format 2",
        "  (column `mirrored` below; earlier runs: none).",
        *(_teacher_data_lines(_teacher_sets(results)) if _teacher_sets(results)
          else [] if distilled
          else ["- No distillation from the reference models; `masked_unlabeled/rwmfd` unused."]),
        *distilled,
        *_doubtful_lines(results),
        *_augment_lines(_augment_kinds(results)),
        *(_common_boxes_lines() if any(
            results.get(stage, {}).get("common_boxes") for stage in CARD_STAGES
        ) else []),
        *_partial_options_lines(results),
        "- Labels: positive IoU >= 0.65, part 0.4-0.65, negative < 0.3 with every face;",
        "  R/O-net also get the earlier stages' detections on the training images, labelled",
        "  the same way (hard-negative mining). See `masksegx/training/samples.py`.",
        "",
        "## Command",
        "",
        "Later runs of one stage reuse the earlier stages' weights from the cache:",
        "",
        *(f"    {command}  # {', '.join(stages)}" for command, stages in stage_commands(results)),
        "",
        # Free-text provenance kept in the cache's results.json ("notes": list of lines), and
        # sections on later passes made by other commands ("sections": list of lines).
        *([*results["notes"], ""] if results.get("notes") else []),
        *results.get("sections", []),
        "## Results",
        "",
    ]
    trained = [stage for stage in CARD_STAGES if stage in results]
    run_rows = []
    for stage in trained:
        r = results[stage]
        ours, standard = r["counts"]["separable"], r["counts"]["standard"]
        t, v = r["samples"]["train"], r["samples"]["val"]
        # Runs before --landmark-weight used MTCNN's weight 1 (P/R: no landmark output).
        weights = "/".join(f"{w:g}" for w in r.get("loss_weights", loss_weights(stage, 1.0)))
        run_rows.append([
            stage, f"{ours[0]:,} / {standard[0]:,} ({ours[0] / standard[0]:.2f}x)",
            f"{ours[1]:,} / {standard[1]:,} ({ours[1] / standard[1]:.2f}x)",
            f"{t['positive']}/{t['part']}/{t['negative']}/{t['landmark']}",
            f"{v['positive']}/{v['part']}/{v['negative']}/{v['landmark']}",
            f"{r.get('mirrored_fraction', 0.0):g}", weights, r["epochs"],
            f"{r['sampling_seconds']:.0f}", f"{r['training_seconds']:.0f}",
        ])
    lines += [
        markdown_table(
            ("net", "params (ours / standard)", "MACs (ours / standard)",
             "train samples pos/part/neg/lmk", "val samples", "mirrored",
             "loss weights cls/box/lmk", "epochs", "sampling s", "training s"),
            run_rows,
        ),
        "",
        "Times: wall seconds on 2 CPU cores shared with other work. Counts: Conv/Linear",
        "weights + biases, and multiply-adds for one 12x12 / 24x24 / 48x48 input (P-net per",
        "output cell). Final epoch, losses without OHEM, accuracy at",
        "p(face) > 0.5 over positives (incl. landmark samples) and negatives:",
        "",
    ]
    final_rows = []
    for stage in trained:
        t, v, e = results[stage]["final"]["train"], results[stage]["final"]["val"], results[stage]["export"]
        final_rows.append([
            stage, f"{t['loss']:.4f}", f"{v['loss']:.4f}",
            f"{v['cls_loss']:.4f} / {v['box_loss']:.4f} / {v['landmark_loss']:.4f}",
            f"{t['accuracy']:.3f}", f"{v['accuracy']:.3f}", f"{v['positive_recall']:.3f}",
            f"{v['negative_accuracy']:.3f}", f"{e['bytes']:,}", f"{e['max_abs_diff']:.1e}",
        ])
    lines += [
        markdown_table(
            ("net", "train loss", "val loss", "val cls / box / landmark loss", "train acc",
             "val acc", "val positive recall", "val negative acc", "ONNX bytes",
             "ORT max abs diff"),
            final_rows,
        ),
        "",
        "Validation samples come from held-out images only; R/O-net validation negatives",
        "include the earlier stages' false positives on those images, so their accuracy is on",
        "harder negatives than P-net's.",
        "",
    ]
    checks = results.get("cascade_check", {})
    if checks:
        lines += [
            "## Cascade check (training side, not the evaluation command)",
            "",
            f"The whole cascade on the {checks['ours']['images']} det/facemask validation images,",
            "run by the training code's private cascade (`masksegx/training/cascade.py`: min",
            "face 20, factor 0.709, thresholds 0.6/0.7/0.7) in onnxruntime, for these files and",
            "the reference MTCNN weights alike. Recall: faces >= 20 px on both sides matched by a",
            "detection at IoU >= 0.5; precision: detections at IoU >= 0.5 with any face (the many",
            "smaller faces included).",
            "",
            markdown_table(
                ("nets", "recall", "with_mask recall", "precision", "detections"),
                ([label, f"{c['recall']:.3f} ({c['faces']} faces)", f"{c['with_mask_recall']:.3f}",
                  f"{c['precision']:.3f}", c["detections"]]
                 for name, label in (("ours", "ds_mtcnn (this)"), ("reference", "mtcnn_*.onnx"))
                 if (c := checks.get(name))),
            ),
            "",
        ]
    lines += [*_license_lines(_teacher_sets(results)), ""]
    (out / CARD).write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m masksegx.training.train_detector",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for ds_mtcnn_*.onnx and the model card")
    parser.add_argument("--stage", choices=STAGES + ("all", "counts", "check"), default="all",
                        help="'counts' prints parameter/MAC counts vs the standard layout; "
                             "'check' runs the cascade check on the exported files")
    parser.add_argument("--epochs", type=int, default=None, help="default: 20 / 10 / 24")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--samples-scale", type=float, default=1.0)
    parser.add_argument("--cache", type=Path, default=Path("build/mtcnn_training"),
                        help="sample shards, intermediate weights and results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--landmark-weight", type=float, default=DEFAULT_LANDMARK_WEIGHT,
                        help="weight of the O-net landmark loss (classification 1, box 0.5)")
    parser.add_argument("--start-from", type=Path, metavar="DIR",
                        help="fine-tune: start each trained net from DIR/ds_mtcnn_<stage>.onnx, "
                             "and take the earlier stages (the miners) from there when the "
                             "cache has no weights for them")
    parser.add_argument("--miners", type=Path, metavar="DIR",
                        help="take the earlier stages (whose detections are the R/O-net's mined "
                             "samples) from DIR/ds_mtcnn_<stage>.onnx, never from the cache: "
                             "e.g. retrain the O-net on the shipped P- and R-net")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--teacher", nargs="?", type=_teacher_sources, default=(),
                        const=sampling.TEACHER_SOURCES, metavar="SETS",
                        help="add teacher-labelled data (the teacher is "
                             "DATA/models/yunet_n_dynamic.onnx): comma-separated sets from "
                             f"{','.join(sampling.TEACHER_SOURCES)} (det/ilc2021 with the faces "
                             "the teacher finds beside its boxes; images labelled by the "
                             "teacher alone); alone: all of them")
    parser.add_argument("--doubtful-score", type=float, metavar="S",
                        help="with --teacher: where the teacher finds a face scored from S to its "
                             "threshold 0.6 in det/ilc2021, away from every labelled face, no "
                             "negative is cut (faces the annotators and the teacher's threshold "
                             "left out)")
    parser.add_argument("--augment", nargs="?", type=_augmentations, default=(),
                        const=sampling.DEFAULT_AUGMENTATIONS, metavar="KINDS",
                        help="augment the training samples: comma-separated kinds from "
                             f"{','.join(sampling.AUGMENTATIONS)} (zoom-in on single faces, "
                             "photometric changes, negatives overhanging the image's edge, "
                             "zoom-in on real photos with one face, frame-filling negatives "
                             "around the image's centre); "
                             f"alone: {','.join(sampling.DEFAULT_AUGMENTATIONS)}")
    parser.add_argument("--distill", nargs="+", type=Path, default=[], metavar="NET",
                        help="train the classification towards the mean face probability of "
                             "these ONNX nets (the stage's interface) on each sample instead of "
                             "its label: distillation from an ensemble")
    parser.add_argument("--distill-rule", choices=DISTILL_RULES, default="mean",
                        help="how --distill combines its nets' face probabilities (max: a face "
                             "where any of them sees one)")
    parser.add_argument("--common-boxes", action="store_true",
                        help="redraw every source's boxes in one convention "
                             "(masksegx.training.box_conventions)")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.distill if not path.is_file()]
    if missing:
        parser.error(f"--distill: no such ONNX file: {', '.join(missing)}")
    if args.doubtful_score is not None and "ilc2021" not in args.teacher:
        parser.error("--doubtful-score: it applies to det/ilc2021, so it needs --teacher with ilc2021")
    if args.stage == "counts":
        print_counts()
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    print_counts()
    templates = sampling.mask_templates(args.data)
    results_file = args.cache / "results.json"
    results: Results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    started = time.perf_counter()
    if args.stage != "check":
        command = "python -m masksegx.training.train_detector " + " ".join(
            sys.argv[1:] if argv is None else argv)
        for stage in STAGES if args.stage == "all" else (args.stage,):
            results[stage] = {**run_stage(stage, args, templates), "command": command}
            results_file.write_text(json.dumps(results, indent=1))
        log(f"trained in {time.perf_counter() - started:.0f} s")
    if all((args.out / f"ds_mtcnn_{stage}.onnx").is_file() for stage in STAGES):
        results["cascade_check"] = recall_check(args)
    results_file.write_text(json.dumps(results, indent=1))
    write_card(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
