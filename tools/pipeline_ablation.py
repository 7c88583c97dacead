"""Tune the gender priors of FaceMaskSegmenter and write the pipeline ablation table.

    python -m tools.pipeline_ablation --data ../shared/data --tune      # print tuned priors
    python -m tools.pipeline_ablation --data ../shared/data --out docs/pipeline_ablation.md

Tuning never sees the evaluation images: it uses the tenth of ``seg/ffhq_synthmask/train`` that
MaskNet's training held out (every 10th sorted pair; on the images it trained on, the net is too
sure of itself for a threshold to be tuned) and the three quarters of ``seg/real_dev`` that are
not held out (every 4th sorted image is ``real_dev_val``; :mod:`masksegx.eval.splits`). Each image is
one face crop (``faces="whole-image"``); its gender is the attribute network's P(male). For every
method the script sweeps the method's prior value (probability threshold, or fuzzy membership
threshold for spectral) and picks, by pooled mIoU, the best value for all faces (neutral), for
faces with P(male) < 0.5 (female) and for the rest (male).

The table scores every method with the gender constraint none / hard / soft and the coverage
constraint on / off on ``real_dev_val`` and ``ffhq_synthmask/test``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from masksegx.eval.datasets import read_image, read_mask
from masksegx.eval.metrics import SegmentationScores
from masksegx.eval.report import markdown_table
from masksegx.eval.splits import FFHQ_TEST, FFHQ_VAL, REAL_DEV_TRAIN, REAL_DEV_VAL
from masksegx.pipeline import (
    GENDER_CONSTRAINTS,
    METHODS,
    FaceMaskSegmenter,
    GenderPriors,
)

TRAIN_SETS = (FFHQ_VAL, REAL_DEV_TRAIN)
EVAL_SETS = (REAL_DEV_VAL, FFHQ_TEST)
#: Which SegmentationPrior field each method reads, and the values swept.
SWEEP = {
    "fused": ("threshold", (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)),
    "learned": ("threshold", (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)),
    "spectral": ("membership_threshold", (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)),
}


def load(data: Path, sets, step: int):
    """[(set label, image, truth)] of the selected pairs, every ``step``-th kept."""
    items = []
    for split in sets:
        pairs = split.pairs(data)[::step]
        items += [(split.name, read_image(i), read_mask(m, split.mask_value)) for i, m in pairs]
    return items


def confusion(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    tp = np.count_nonzero(pred & truth)
    fp = np.count_nonzero(pred) - tp
    fn = np.count_nonzero(truth) - tp
    return np.array([tp, fp, fn, pred.size - tp - fp - fn], np.int64)


def pooled_miou(counts: np.ndarray) -> float:
    """mIoU of images pooled as SegmentationScores pools them, from summed (tp, fp, fn, tn)."""
    tp, fp, fn, tn = (int(c) for c in counts)
    return SegmentationScores(tp=tp, fp=fp, fn=fn, tn=tn, image_ious=[float("nan")]).miou


def tune(data: Path, step: int) -> dict:
    items = load(data, TRAIN_SETS, step)
    tuned = {}
    for method, (field, values) in SWEEP.items():
        base = FaceMaskSegmenter(method, "none", "whole-image", coverage_constraint=False)
        p_male = np.array([base(image)[0].gender_prob for _, image, _ in items])
        counts = np.zeros((len(values), len(items), 4), np.int64)
        for v, value in enumerate(values):
            prior = dataclasses.replace(base.priors.neutral, **{field: value})
            seg = FaceMaskSegmenter(
                method, "none", "whole-image", coverage_constraint=False,
                priors=GenderPriors(prior, prior, prior),
            )
            for k, (_, image, truth) in enumerate(items):
                counts[v, k] = confusion(seg(image)[0].mask, truth)
        best = {}
        for group, chosen in (("neutral", p_male >= 0), ("female", p_male < 0.5), ("male", p_male >= 0.5)):
            scores = [pooled_miou(counts[v, chosen].sum(0)) for v in range(len(values))]
            best[group] = (values[int(np.argmax(scores))], max(scores), int(chosen.sum()))
        tuned[method] = best
        print(f"{method}: {field} " + ", ".join(
            f"{g}={v} (mIoU {s:.4f}, {n} faces)" for g, (v, s, n) in best.items()
        ))
    return tuned


def evaluate(data: Path, step: int) -> str:
    items = load(data, EVAL_SETS, step)
    labels = [split.name for split in EVAL_SETS]
    header = ["method", "gender constraint", "coverage constraint"]
    for label in labels:
        header += [f"{label} mIoU", f"{label} pAcc"]
    rows = []
    for method in METHODS:
        for constraint in GENDER_CONSTRAINTS:
            for coverage in (True, False):
                seg = FaceMaskSegmenter(method, constraint, "whole-image", coverage_constraint=coverage)
                scores = {label: SegmentationScores() for label in labels}
                for label, image, truth in items:
                    scores[label].add(seg(image)[0].mask, truth)
                cells = [method, constraint, "on" if coverage else "off"]
                for label in labels:
                    summary = scores[label].summary()
                    cells += [f"{summary['miou']:.4f}", f"{summary['pacc']:.4f}"]
                rows.append(cells)
                print(" | ".join(cells), flush=True)
    return markdown_table(header, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--tune", action="store_true", help="tune the priors (training images)")
    parser.add_argument("--out", type=Path, help="write the ablation table here (markdown)")
    parser.add_argument("--step", type=int, default=1, help="use every N-th image (quick runs)")
    args = parser.parse_args()
    if args.tune:
        tune(args.data, args.step)
    if args.out:
        table = evaluate(args.data, args.step)
        args.out.write_text(
            "# Pipeline ablation: segmentation method x gender constraint x coverage constraint\n\n"
            "Generated by `python -m tools.pipeline_ablation` (faces = whole image; real_dev_val = every "
            "4th sorted real_dev image, never used for training or tuning).\n\n" + table + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
