"""Evaluation of face-mask segmentation: metrics, dataset readers, baselines, compensations.

- :mod:`.metrics`: :class:`SegmentationScores` (dataset-level mIoU, pAcc, per-image IoU).
- :mod:`.datasets`: :func:`read_image`, :func:`read_mask`, :func:`pair_files`,
  :func:`evaluate_segmentation`.
- :mod:`.baselines`: the paper's Table 4 methods, :data:`SEGMENTATION_METHODS`.
- :mod:`.compensations`: the paper's Table 3 methods, :data:`COMPENSATION_METHODS`.
"""

from .baselines import SEGMENTATION_METHODS
from .compensations import COMPENSATION_METHODS
from .datasets import DatasetError, evaluate_segmentation, pair_files, read_image, read_mask
from .metrics import SegmentationScores

__all__ = [
    "COMPENSATION_METHODS",
    "SEGMENTATION_METHODS",
    "DatasetError",
    "SegmentationScores",
    "evaluate_segmentation",
    "pair_files",
    "read_image",
    "read_mask",
]
