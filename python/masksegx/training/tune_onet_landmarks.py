"""Second pass on the shipped O-net: more landmark training, detection kept as it was.

    python -m masksegx.training.tune_onet_landmarks --data ../shared/data \\
        --models python/masksegx/models [--start ONET.onnx] --out python/masksegx/models
        [--mode head|finetune] [--landmark-loss mse|l1] [--landmark-weight W] [--lr LR]
        [--samples-scale F] [--epochs N] [--time-limit S] [--cache DIR] [--seed S]

The first O-net training (:mod:`.train_detector`, ``--stage onet``) left coarse landmarks
(held-out cuhk5pt NME 0.107 against 0.058 for the standard MTCNN weights) with good detection.
This pass starts from the weights in ``--start`` (default ``--models/ds_mtcnn_onet.onnx``,
read back into :class:`.nets.ONet`; the P- and R-net come from ``--models``) and trains on
many more landmark samples:

- landmark crops of every cuhk5pt training line (even 0-based lines) and ``attr/mtfl_train``
  face, half of them wearing a synthetic mask (:mod:`.samples`), ``--samples-scale`` times
  :data:`QUOTA`; plus positives, parts, negatives and the shipped P/R-net's detections on the
  det/facemask training images, as in the O-net's own training;
- cascade crops: the shipped P- and R-net run on the landmark images, and each squared R-net
  box that overlaps a face (IoU >= 0.4) with all five points inside becomes a landmark sample
  (the crops the O-net sees at detection time, in the R-net's own framing).

Modes:

- ``head``: only the landmark head (Linear 256 -> 10) trains; the trunk, face probability and box
  regression stay bit-identical, so detections (AP, recall) cannot change.
- ``finetune``: every weight trains on the landmark loss (weight ``--landmark-weight``) plus the
  O-net's usual classification (OHEM) and box losses, plus a distillation term that keeps the
  face probability and box offsets close to the starting net's on every sample (so AP holds).

The validation samples (reported losses only, nothing is selected on them) come from the
held-out images: det/facemask numbers ending in 1 and the odd cuhk5pt lines.
Adam, cosine decay from ``--lr``; ``--time-limit`` stops training cleanly between batches.
Writes ``ds_mtcnn_onet.onnx`` into ``--out`` (same export checks as :mod:`.train_detector`) and
``onet_landmarks.json`` (settings, sample counts, per-epoch losses) into the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..boxes import iou_inclusive
from ..synthesis import MaskTemplate
from . import samples as sampling
from .cascade import Cascade, OnnxNet, normalise
from .nets import ONet, build
from .train_detector import BATCH, export_onnx, log, multitask_losses

#: Samples at --samples-scale 1 (the O-net's own training used 16k landmark samples).
QUOTA = sampling.Quota(positive=6000, part=6000, negative=7000, landmark=40000, mined=8000)
#: Cascade crops per landmark face at most.
CASCADE_CROPS_PER_FACE = 2
CASCADE_IOU = 0.4
DISTILL_WEIGHT = 1.0
#: PReLU slopes of the conv layers are unnamed initializers in the exported graph, in layer order.
_ONET_PRELUS = ("body.1.weight", "body.2.2.weight", "body.4.2.weight", "body.7.weight")


def load_onnx_onet(path: Path) -> ONet:
    """:class:`.nets.ONet` with the weights of an exported ``ds_mtcnn_onet.onnx``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    net = build("onet")
    state = net.state_dict()
    named = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    unnamed = [named.pop(name) for name in list(named) if name not in state]
    if len(unnamed) != len(_ONET_PRELUS):
        raise ValueError(f"{path}: unexpected initializers {len(unnamed)}")
    named.update(zip(_ONET_PRELUS, unnamed))
    missing = set(state) - set(named)
    if missing:
        raise ValueError(f"{path}: missing weights {sorted(missing)}")
    net.load_state_dict({
        name: torch.from_numpy(named[name].copy()).reshape(state[name].shape) for name in state
    })
    return net.eval()


def cascade_crops(landmark_images: list[sampling.FaceImage], detector: sampling.Detector, seed: int,
                  per_face: int, templates: Iterable[MaskTemplate] = ()) -> sampling.SampleSet:
    """Landmark samples from the detector's boxes on the landmark images (module docstring);
    the images get synthetic masks as in :func:`.samples.generate` (``templates``)."""
    rng = np.random.default_rng(seed)
    collector = sampling._Collector(48, rng)
    templates = list(templates)
    for face_image in landmark_images:
        image = sampling._load_rgb(face_image, templates, rng)
        boxes = detector(image)
        added = 0
        for box in boxes[rng.permutation(len(boxes))]:
            if added == per_face:
                break
            side = int(round(max(box[2] - box[0], box[3] - box[1]) + 1))
            if side < sampling.MIN_CROP_SIDE:
                continue
            x = int(round((box[0] + box[2]) / 2 - side / 2))
            y = int(round((box[1] + box[3]) / 2 - side / 2))
            crop = sampling.crop_box(x, y, side)
            overlaps = iou_inclusive(crop[None], face_image.boxes)[0]
            best = int(overlaps.argmax())
            if overlaps[best] < CASCADE_IOU:
                continue
            assert face_image.landmarks is not None  # landmark images have landmarks
            points = face_image.landmarks[best]
            if not ((points >= crop[:2]).all() and (points <= crop[2:]).all()):
                continue
            label = sampling.LABEL_POSITIVE if overlaps[best] >= sampling.POSITIVE_IOU \
                else sampling.LABEL_PART
            collector.add(image, x, y, side, label, face_image.boxes[best], points)
            added += 1
    return collector.result()


def concatenate(sets: list[sampling.SampleSet]) -> sampling.SampleSet:
    return sampling.SampleSet(*(
        np.concatenate([getattr(s, name) for s in sets])
        for name in ("images", "labels", "offsets", "landmarks", "has_landmarks")
    ))


def make_samples(args: argparse.Namespace, templates: list[MaskTemplate], split: str) -> sampling.SampleSet:
    validation = split == "val"
    fraction = 0.1 if validation else 1.0
    seed = args.seed + (1 if validation else 0)
    quota = QUOTA.scaled(args.samples_scale * fraction)
    pnet, rnet = (OnnxNet(args.models / f"ds_mtcnn_{s}.onnx") for s in ("pnet", "rnet"))
    detector = Cascade(pnet, rnet)
    box_images, landmark_images = sampling.sources(args.data, validation)
    meta = {"quota": vars(quota), "seed": seed, "split": split, "format": 2,
            "cascade_per_face": CASCADE_CROPS_PER_FACE,
            "pnet_rnet": [hashlib.sha256(
                (args.models / f"ds_mtcnn_{s}.onnx").read_bytes()).hexdigest()[:16]
                for s in ("pnet", "rnet")]}
    folder = args.cache / "samples" / split
    drawn = sampling.cached(folder / "drawn", meta, lambda: sampling.generate(
        box_images, landmark_images, 48, quota, seed, templates, detector))
    crops = sampling.cached(folder / "cascade", {k: v for k, v in meta.items() if k != "quota"},
                            lambda: cascade_crops(
        landmark_images, detector, seed + 10, CASCADE_CROPS_PER_FACE, templates))
    log(f"{split}: drawn {drawn.counts()}, cascade crops {crops.counts()}")
    return concatenate([drawn, crops])


#: Images (normalised), labels, offsets, landmarks and has-landmarks flags.
Samples = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def sample_tensors(data: sampling.SampleSet, index: np.ndarray | slice) -> Samples:
    """Images (normalised), labels, offsets, landmarks and has-landmarks flags of ``data[index]``."""
    return (normalise(data.images[index]), torch.from_numpy(data.labels[index]),
            torch.from_numpy(data.offsets[index]), torch.from_numpy(data.landmarks[index]),
            torch.from_numpy(data.has_landmarks[index]))


def losses(net: ONet, teacher: ONet, images: torch.Tensor, labels: torch.Tensor,
           offsets: torch.Tensor, landmarks: torch.Tensor, has_landmarks: torch.Tensor, mode: str,
           weight: float, landmark_loss: str = "mse") -> tuple[torch.Tensor, dict[str, float]]:
    logits, reg, lmk = net.logits(images)
    distance = F.l1_loss if landmark_loss == "l1" else F.mse_loss
    landmark = distance(lmk[has_landmarks], landmarks[has_landmarks]) \
        if has_landmarks.any() else lmk.sum() * 0.0
    if mode == "head":
        return weight * landmark, {"landmark": landmark.item()}
    cls, box, _ = multitask_losses((logits, reg), labels, offsets, landmarks, has_landmarks,
                                   labels.float(), ohem=True)
    with torch.no_grad():
        t_logits, t_reg, _ = teacher.logits(images)
    distill = F.kl_div(F.log_softmax(logits, 1), F.softmax(t_logits, 1), reduction="batchmean") \
        + F.mse_loss(reg, t_reg)
    total = cls + 0.5 * box + weight * landmark + DISTILL_WEIGHT * 10 * distill
    return total, {"landmark": landmark.item(), "cls": cls.item(), "box": box.item(),
                   "distill": distill.item()}


def train(net: ONet, teacher: ONet, train_set: sampling.SampleSet, val_set: sampling.SampleSet,
          args: argparse.Namespace) -> list[dict[str, object]]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    if args.mode == "head":
        for name, p in net.named_parameters():
            p.requires_grad = name.startswith("landmark_head")
    params = [p for p in net.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=args.lr)
    steps = args.epochs * -(-len(train_set) // BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    started = time.perf_counter()
    history: list[dict[str, object]] = []
    for epoch in range(1, args.epochs + 1):
        net.train()
        if args.mode == "head":
            net.eval()  # no batch norm or dropout; eval keeps the frozen trunk exactly as is
        totals: dict[str, float] = {}
        seen = 0
        stopped = False
        order = rng.permutation(len(train_set))
        for start in range(0, len(order), BATCH):
            if time.perf_counter() - started > args.time_limit:
                stopped = True
                break
            index = order[start : start + BATCH]
            tensors = sample_tensors(train_set, index)
            loss, parts = losses(net, teacher, *tensors, args.mode, args.landmark_weight,
                                 args.landmark_loss)
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch: Tensor.backward is unannotated
            optimiser.step()
            schedule.step()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v * len(index)
            seen += len(index)
        val = evaluate(net, teacher, val_set, args)
        record = {"epoch": epoch, "seconds": time.perf_counter() - started,
                  "train": {k: v / max(1, seen) for k, v in totals.items()}, "val": val,
                  "stopped_early": stopped}
        history.append(record)
        log(f"epoch {epoch}/{args.epochs} ({record['seconds']:.0f} s): train "
            f"{record['train']} | val {val}")
        if stopped:
            log(f"time limit {args.time_limit:.0f} s reached")
            break
    return history


@torch.no_grad()
def evaluate(net: ONet, teacher: ONet, data: sampling.SampleSet,
             args: argparse.Namespace) -> dict[str, float]:
    net.eval()
    totals: dict[str, float] = {}
    seen = 0
    for start in range(0, len(data), 1024):
        sl = slice(start, start + 1024)
        tensors = sample_tensors(data, sl)
        _, parts = losses(net, teacher, *tensors, "finetune", args.landmark_weight,
                          args.landmark_loss)
        n = len(data.labels[sl])
        for k, v in parts.items():
            totals[k] = totals.get(k, 0.0) + v * n
        seen += n
    return {k: round(v / max(1, seen), 6) for k, v in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m masksegx.training.tune_onet_landmarks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--models", type=Path, required=True,
                        help="folder with the starting ds_mtcnn_{pnet,rnet,onet}.onnx")
    parser.add_argument("--start", type=Path, default=None,
                        help="starting O-net .onnx (default: --models/ds_mtcnn_onet.onnx)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("build/onet_landmarks"))
    parser.add_argument("--mode", choices=("head", "finetune"), default="finetune")
    parser.add_argument("--samples-scale", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--landmark-weight", type=float, default=100.0)
    parser.add_argument("--landmark-loss", choices=("mse", "l1"), default="mse",
                        help="distance of the landmark loss (fractions of the crop)")
    parser.add_argument("--time-limit", type=float, default=1200.0,
                        help="seconds of training (sampling not counted)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    start_weights = args.start or args.models / "ds_mtcnn_onet.onnx"
    net = load_onnx_onet(start_weights)
    teacher = load_onnx_onet(start_weights)
    for p in teacher.parameters():
        p.requires_grad = False
    templates = sampling.mask_templates(args.data)
    started = time.perf_counter()
    sets = {split: make_samples(args, templates, split) for split in ("train", "val")}
    sampling_seconds = time.perf_counter() - started
    log(f"before: val {evaluate(net, teacher, sets['val'], args)}")
    history = train(net, teacher, sets["train"], sets["val"], args)
    torch.save(net.state_dict(), args.cache / "onet.pt")
    export = export_onnx(net, "onet", args.out / "ds_mtcnn_onet.onnx")
    command = "python -m masksegx.training.tune_onet_landmarks " + " ".join(
        sys.argv[1:] if argv is None else argv)
    report = {"command": command, "settings": {k: str(v) for k, v in vars(args).items()},
              "samples": {s: d.counts() for s, d in sets.items()},
              "sampling_seconds": sampling_seconds, "history": history, "export": export}
    (args.cache / "onet_landmarks.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
