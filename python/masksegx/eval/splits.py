"""Named splits of the segmentation sets: which image/mask pairs each one holds.

One place for the held-out rules that training (:mod:`masksegx.training.seg_cache`), tuning
and the evaluation tools share. A split is a folder of the shared data folder (``images/`` and
``masks/``, paired and sorted by name by :func:`.datasets.pair_files`) and a rule on the index
of a pair in that order:

- ``real_dev``: all of ``seg/real_dev`` (real photos, mask value 255);
- ``real_dev_val``: every 4th pair of it (indices 0, 4, 8, ...), never trained or tuned on;
- ``real_dev_train``: the other three quarters;
- ``ffhq_synthmask_train``: all of ``seg/ffhq_synthmask/train`` (synthetic masks, label 2);
- ``ffhq_val``: every 10th pair of it (indices 0, 10, 20, ...), held out of the learned
  path's training (which uses the other nine tenths);
- ``ffhq_test``: all of ``seg/ffhq_synthmask/test``, reported and never used for a choice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .datasets import pair_files, read_image, read_mask


@dataclass(frozen=True)
class SegmentationSplit:
    """Pairs of ``folder`` (relative to the data folder) whose sorted index passes the rule:
    every ``step``-th pair from index 0 (``held_out``), or all the others (not ``held_out``).
    With ``step`` 1 and ``held_out`` the split is the whole folder."""

    name: str
    folder: str
    mask_value: int
    step: int = 1
    held_out: bool = True

    def keeps(self, index: int) -> bool:
        """Whether the pair at ``index`` (in sorted order) belongs to this split."""
        return (index % self.step == 0) == self.held_out

    def pairs(self, data: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
        """(image, mask) paths of this split under the data folder ``data``, sorted by name."""
        root = Path(data) / self.folder
        pairs = pair_files(root / "images", root / "masks")
        return [pair for index, pair in enumerate(pairs) if self.keeps(index)]

    def load(
        self, data: str | os.PathLike[str], limit: int | None = None
    ) -> list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]]:
        """(BGR image, bool mask) of the first ``limit`` pairs (all by default)."""
        return [
            (read_image(image), read_mask(mask, self.mask_value))
            for image, mask in self.pairs(data)[:limit]
        ]


REAL_DEV = SegmentationSplit("real_dev", "seg/real_dev", 255)
REAL_DEV_VAL = SegmentationSplit("real_dev_val", "seg/real_dev", 255, step=4)
REAL_DEV_TRAIN = SegmentationSplit("real_dev_train", "seg/real_dev", 255, step=4, held_out=False)
FFHQ_SYNTHMASK_TRAIN = SegmentationSplit("ffhq_synthmask_train", "seg/ffhq_synthmask/train", 2)
FFHQ_VAL = SegmentationSplit("ffhq_val", "seg/ffhq_synthmask/train", 2, step=10)
FFHQ_TEST = SegmentationSplit("ffhq_test", "seg/ffhq_synthmask/test", 2)
