"""Segmentation scores over a dataset: a pixel confusion matrix plus per-image mask IoU.

Definitions (``mask`` = the positive class, the worn face mask):

- ``mask_iou``  = tp / (tp + fp + fn) over all pixels of all images (dataset-level confusion).
- ``bg_iou``    = tn / (tn + fn + fp), the same for the background class.
- ``miou``      = (mask_iou + bg_iou) / 2, the two-class mean IoU the paper reports.
- ``pacc``      = (tp + tn) / all pixels.
- ``mean_image_iou`` = mean over images of that image's mask IoU. An image whose prediction and
  truth are both empty scores 1.0 (nothing to find, nothing found); the same rule applies to the
  dataset-level IoUs when a class never occurs and is never predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validation import as_mask


def _iou(intersection: int, union: int) -> float:
    return 1.0 if union == 0 else intersection / union


@dataclass
class SegmentationScores:
    """Accumulates binary segmentation results image by image.

    >>> scores = SegmentationScores()
    >>> scores.add(pred, truth)          # bool (or 0/1 integer) HxW arrays of equal shape
    >>> scores.summary()["miou"]
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    image_ious: list[float] = field(default_factory=list)

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        """Add one image. Raises ValueError if the shapes differ or are not 2-D."""
        if not isinstance(pred, np.ndarray) or pred.ndim != 2:
            raise ValueError(
                f"pred: expected a 2-D (H, W) mask, got {getattr(pred, 'shape', pred)!r}"
            )
        pred = as_mask(pred, "pred", pred.shape)
        truth = as_mask(truth, "truth", pred.shape)
        tp = int(np.count_nonzero(pred & truth))
        fp = int(np.count_nonzero(pred)) - tp
        fn = int(np.count_nonzero(truth)) - tp
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.tn += pred.size - tp - fp - fn
        self.image_ious.append(_iou(tp, tp + fp + fn))

    @property
    def n_images(self) -> int:
        return len(self.image_ious)

    def _require_images(self) -> None:
        if not self.image_ious:
            raise ValueError("no images were added: scores are undefined")

    @property
    def mask_iou(self) -> float:
        self._require_images()
        return _iou(self.tp, self.tp + self.fp + self.fn)

    @property
    def bg_iou(self) -> float:
        self._require_images()
        return _iou(self.tn, self.tn + self.fp + self.fn)

    @property
    def miou(self) -> float:
        return (self.mask_iou + self.bg_iou) / 2.0

    @property
    def pacc(self) -> float:
        self._require_images()
        return (self.tp + self.tn) / (self.tp + self.fp + self.fn + self.tn)

    @property
    def mean_image_iou(self) -> float:
        self._require_images()
        return float(np.mean(self.image_ious))

    def summary(self) -> dict[str, float | int]:
        """The scores as a dict (keys: miou, mask_iou, bg_iou, pacc, mean_image_iou, n_images)."""
        return {
            "miou": self.miou,
            "mask_iou": self.mask_iou,
            "bg_iou": self.bg_iou,
            "pacc": self.pacc,
            "mean_image_iou": self.mean_image_iou,
            "n_images": self.n_images,
        }
