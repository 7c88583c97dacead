"""Evaluation: segmentation and detector scores, attribute scores, dataset readers, baselines,
compensations, named splits and report writers. The runtime package never imports it.

- :mod:`.metrics`: :class:`SegmentationScores` (dataset-level mIoU, pAcc, per-image IoU).
- :mod:`.datasets`: :func:`read_image`, :func:`read_mask`, :func:`pair_files`,
  :func:`evaluate_segmentation`.
- :mod:`.baselines`: the paper's Table 4 methods, :data:`SEGMENTATION_METHODS`.
- :mod:`.compensations`: the paper's Table 3 methods, :data:`COMPENSATION_METHODS`.
- :mod:`.detection`: face-detector scores (VOC AP, recall per class, landmark NME) and readers
  for Pascal VOC, CUHK and MTFL annotations.
- :mod:`.reference_detectors`: Ultra-Light and RetinaFace onnxruntime runners (models not
  shipped: they take a path).
- :mod:`.attributes`: gender and wearing-state scores of the attribute network beside gender-v1
  (:func:`~.attributes.evaluate_attributes`, behind ``masksegx eval-attr``).
- :mod:`.splits`: the named held-out splits of the segmentation sets (``real_dev_val``, ...).
- :mod:`.report`: the markdown table writer and the JSON record writer.
"""

from .baselines import SEGMENTATION_METHODS
from .compensations import COMPENSATION_METHODS
from .datasets import DatasetError, evaluate_segmentation, pair_files, read_image, read_mask
from .detection import (
    average_precision,
    class_recall,
    evaluate_detector,
    evaluate_landmarks,
    read_cuhk,
    read_mtfl,
    read_voc,
    voc_pairs,
)
from .metrics import SegmentationScores

__all__ = [
    "COMPENSATION_METHODS",
    "SEGMENTATION_METHODS",
    "DatasetError",
    "SegmentationScores",
    "average_precision",
    "class_recall",
    "evaluate_detector",
    "evaluate_landmarks",
    "evaluate_segmentation",
    "pair_files",
    "read_image",
    "read_cuhk",
    "read_mask",
    "read_mtfl",
    "read_voc",
    "voc_pairs",
]
