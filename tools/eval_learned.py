"""Score the segmentation methods spectral / learned / fused (and the U-Net baseline) on the
validation and test sets, in both framings, and pick the fused settings on validation data.

    python -m tools.eval_learned --out docs/learned_seg.md --json docs/learned_seg.json
    python -m tools.eval_learned --tune-fused      # also search FusedParams

Sets (``--data``, default ``../shared/data`` beside the repository; :mod:`masksegx.eval.splits`):

- ``real_dev_val``: every 4th sorted pair of ``seg/real_dev`` (indices 0, 4, 8, ...: never
  trained on; as ``tools.paper_tables``);
- ``ffhq_val``: every 10th sorted pair of ``seg/ffhq_synthmask/train`` (indices 0, 10, ...:
  held out of the learned path's training, see ``masksegx.training.seg_cache``);
- ``ffhq_test``: ``seg/ffhq_synthmask/test`` (50; mask class 2).

Validation = ``real_dev_val`` and ``ffhq_val``; the method default and the fused settings are
chosen by the mean of their two mIoUs. ``ffhq_test`` is reported, never used for a choice.
Framings: ``whole-image`` (the image is the face view) and ``detect`` (MTCNN faces, each
segmented in its box view, union; no face = empty mask). ms/img is the method's wall time on
one thread (onnxruntime 1 thread, OpenCV 1 thread), detection included in ``detect``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from masksegx.detect import FaceDetector
from masksegx.eval.metrics import SegmentationScores
from masksegx.eval.report import markdown_table
from masksegx.eval.splits import FFHQ_TEST, FFHQ_VAL, REAL_DEV_VAL
from masksegx.learned import FusedParams, MaskNet, segment_fused
from masksegx.spectral import segment_spectral

from . import DATA, UNET_BASELINE

SPLITS = (REAL_DEV_VAL, FFHQ_VAL, FFHQ_TEST)
VALIDATION = (REAL_DEV_VAL.name, FFHQ_VAL.name)


def load_sets(data: Path, limit=None):
    return {split.name: split.load(data, limit) for split in SPLITS}


def methods(fused: FusedParams, with_unet: bool):
    net = MaskNet()
    out = {
        "spectral": lambda image, box: segment_spectral(image, region=_int_box(image, box)).mask,
        "learned": lambda image, box: net.segment(image, box),
        "fused": lambda image, box: segment_fused(image, box, params=fused, model=net),
    }
    if with_unet and UNET_BASELINE.is_file():
        unet = MaskNet(UNET_BASELINE)
        out["unet"] = lambda image, box: unet.segment(image, box)
    return out


def _int_box(image, box):
    if box is None:
        return None
    h, w = image.shape[:2]
    return (max(int(round(box[0])), 0), max(int(round(box[1])), 0),
            min(int(round(box[2])), w), min(int(round(box[3])), h))


def detections(sets, detector):
    """Face boxes per image (computed once), and detection time per image."""
    boxes, seconds = {}, {}
    for name, items in sets.items():
        start = time.perf_counter()
        boxes[name] = [detector(image).boxes for image, _ in items]
        seconds[name] = (time.perf_counter() - start) / max(len(items), 1)
    return boxes, seconds


def score(segment, items, boxes=None):
    scores, seconds = SegmentationScores(), 0.0
    for index, (image, truth) in enumerate(items):
        start = time.perf_counter()
        if boxes is None:
            pred = segment(image, None)
        else:
            pred = np.zeros(truth.shape, bool)
            for box in boxes[index]:
                if box[2] > 0 and box[3] > 0 and box[0] < image.shape[1] and box[1] < image.shape[0]:
                    pred |= segment(image, box)
        seconds += time.perf_counter() - start
        scores.add(pred, truth)
    out = scores.summary()
    out["ms_per_image"] = 1000 * seconds / len(items)
    return out


def tune_fused(sets, net):
    """Grid over FusedParams on the validation sets (whole-image framing), best mean mIoU."""
    grid = {"threshold": (0.4, 0.5, 0.6), "min_area_share": (0.0, 0.1, 0.3), "p1": (8.0, float("inf")),
            "p2": (0.5, float("inf")), "spectral_weight": (0.0, 0.2, 0.3)}
    probs = {name: [net.probability(image) for image, _ in sets[name]] for name in VALIDATION}
    results = []
    for values in itertools.product(*grid.values()):
        params = FusedParams(**dict(zip(grid, values)))
        means = []
        for name in VALIDATION:
            scores = SegmentationScores()
            for (image, truth), prob in zip(sets[name], probs[name]):
                scores.add(segment_fused(image, None, params=params, model=_Fixed(net, prob)), truth)
            means.append(scores.miou)
        results.append((float(np.mean(means)), means, params))
        print(f"  {np.mean(means):.4f} {[round(m, 4) for m in means]} {params}", file=sys.stderr, flush=True)
    results.sort(key=lambda r: -r[0])
    return results


class _Fixed:
    """A MaskNet stand-in returning a precomputed whole-image probability (fast tuning)."""

    def __init__(self, net, prob):
        self.net, self.prob = net, prob

    def view_probability(self, image, box=None):
        return self.prob, (0, 0, image.shape[1], image.shape[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, help="markdown table")
    parser.add_argument("--json", type=Path, help="all scores")
    parser.add_argument("--limit", type=int, help="first N pairs per set (quick runs)")
    parser.add_argument("--tune-fused", action="store_true")
    parser.add_argument("--no-unet", action="store_true")
    parser.add_argument("--framings", nargs="+", default=["whole-image", "detect"],
                        choices=["whole-image", "detect"])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    sets = load_sets(args.data, args.limit)
    fused = FusedParams()
    record = {"sets": {k: len(v) for k, v in sets.items()}, "fused_params": asdict(fused)}
    if args.tune_fused:
        ranked = tune_fused(sets, MaskNet())
        record["fused_tuning_top"] = [(m, ms, asdict(p)) for m, ms, p in ranked[:10]]
        print("best fused params:", ranked[0], file=sys.stderr)
    table = methods(fused, not args.no_unet)
    # Each face framed by the cascade's own box, as FaceMaskSegmenter frames it.
    detector = FaceDetector(calibrated_boxes=False)
    boxes, detect_seconds = (detections(sets, detector) if "detect" in args.framings else ({}, {}))
    record["detect_ms_per_image"] = {k: 1000 * v for k, v in detect_seconds.items()}
    record["faces_found"] = {k: [len(b) for b in v] for k, v in boxes.items()}
    scores = {}
    for framing in args.framings:
        for method, segment in table.items():
            for name, items in sets.items():
                print(f"  {method} {framing} {name}", file=sys.stderr, flush=True)
                s = score(segment, items, boxes[name] if framing == "detect" else None)
                if framing == "detect":
                    s["ms_per_image"] += 1000 * detect_seconds[name]
                scores[f"{method}|{framing}|{name}"] = s
    record["scores"] = scores
    header = ["method", "framing"]
    for name in sets:
        header += [f"{name} mIoU", f"{name} ms"]
    rows = []
    for framing in args.framings:
        for method in table:
            cells = [method, framing]
            for name in sets:
                s = scores[f"{method}|{framing}|{name}"]
                cells += [f"{s['miou']:.4f}", f"{s['ms_per_image']:.1f}"]
            val = np.mean([scores[f"{method}|{framing}|{n}"]["miou"] for n in VALIDATION])
            rows.append(cells + [f"{val:.4f}"])
    no_face = {k: sum(n == 0 for n in v) for k, v in record["faces_found"].items()}
    markdown = markdown_table(header + ["validation mean"], rows)
    markdown += f"\n\nImages without a detected face: {no_face}\n" if no_face else "\n"
    print(markdown)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
