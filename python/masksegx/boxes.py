"""Face boxes: the two conventions masksegx uses, and one IoU and one NMS helper for each.

Every box is ``(x1, y1, x2, y2)`` in pixels, x to the right and y down, as float arrays of
shape (N, 4). The conventions differ in where the box ends:

**Inclusive ends** (MTCNN, facenet-pytorch): the box covers the pixels ``x1..x2`` and
``y1..y2``, last pixel included, so it is ``x2 - x1 + 1`` wide. Used by the detector's output
(:class:`masksegx.Detections` ``boxes``, :class:`masksegx.Face` ``box``) and the cascade's last
NMS. IoU: :func:`iou_inclusive`; NMS: :func:`masksegx.nms.nms` (C++).

**Exclusive ends** (continuous coordinates, torchvision, the Pascal VOC scores here): the box
is ``x2 - x1`` wide, its area ``(x2 - x1) * (y2 - y1)``. Used by the evaluation
(:mod:`masksegx.eval.detection`, the reference detectors of
:mod:`masksegx.eval.reference_detectors`), the cascade's first two NMS steps, and the integer
crop boxes of :func:`masksegx.segment_spectral` (``region`` and :class:`masksegx.SpectralResult`
``box``). IoU: :func:`iou_exclusive`; NMS: :func:`nms_exclusive`.

:class:`masksegx.learned.MaskNet` takes either: only the box's centre and longer side matter.

Face boxes also differ in where around the face they are drawn (a *box convention*, one per
dataset and detector): :class:`BoxConvention` and :func:`redraw`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_numeric_points
from .nms import nms

#: Shrinking ``x2`` and ``y2`` by this turns an exclusive-end box into the inclusive-end box of
#: the same width and height.
_LAST_PIXEL = np.array([0, 0, 1, 1], np.float32)


def as_boxes(boxes: object, name: str = "boxes") -> np.ndarray:
    """Return ``boxes`` as a float64 [N, 4] array (N may be 0); TypeError for anything but
    numbers (strings are not converted), ValueError on a bad shape or a non-finite value."""
    out = np.asarray(as_numeric_points(boxes, name), dtype=np.float64)
    if out.size == 0:
        return out.reshape(0, 4)
    if out.ndim != 2 or out.shape[1] != 4:
        raise ValueError(f"{name}: expected shape (N, 4), got {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return out


def iou_exclusive(boxes_a: object, boxes_b: object) -> np.ndarray:
    """IoU matrix float64 [A, B] of exclusive-end boxes; 0 where the union is empty."""
    return _iou(as_boxes(boxes_a, "boxes_a"), as_boxes(boxes_b, "boxes_b"), 0.0)


def iou_inclusive(boxes_a: object, boxes_b: object) -> np.ndarray:
    """IoU matrix float64 [A, B] of inclusive-end boxes (a side counts ``x2 - x1 + 1`` pixels);
    0 where the union is empty."""
    return _iou(as_boxes(boxes_a, "boxes_a"), as_boxes(boxes_b, "boxes_b"), 1.0)


def nms_exclusive(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS of exclusive-end boxes: indices kept (int64), best score first (ties: lower
    index first); a box is dropped when its IoU with a better kept box is above
    ``iou_threshold``. Runs :func:`masksegx.nms.nms` on the boxes' inclusive-end equivalents
    (float32 coordinates)."""
    return _nms_exclusive(as_boxes(boxes), as_numeric_points(scores, "scores"), iou_threshold)


def _nms_exclusive(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """:func:`nms_exclusive` of a finite float [N, 4] array (the scores are checked here)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    shrunk = np.asarray(boxes, np.float32) - _LAST_PIXEL
    return nms(shrunk, np.asarray(scores, np.float32), iou_threshold)


def _iou(a: np.ndarray, b: np.ndarray, last_pixel: float) -> np.ndarray:
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(right - left + last_pixel, 0, None) * np.clip(bottom - top + last_pixel, 0, None)
    area_a = (a[:, 2] - a[:, 0] + last_pixel) * (a[:, 3] - a[:, 1] + last_pixel)
    area_b = (b[:, 2] - b[:, 0] + last_pixel) * (b[:, 3] - b[:, 1] + last_pixel)
    union = area_a[:, None] + area_b[None, :] - inter
    overlap: np.ndarray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return overlap


@dataclass(frozen=True)
class BoxConvention:
    """Where a source draws a face's box relative to a reference box of the same face: the
    centre shift as fractions of the reference box's width and height, and the width and height
    ratios (inclusive-end boxes)."""

    shift_x: float
    shift_y: float
    width: float
    height: float


#: The reference's own convention.
REFERENCE = BoxConvention(0.0, 0.0, 1.0, 1.0)


def redraw(boxes: object, source: BoxConvention, target: BoxConvention) -> np.ndarray:
    """Inclusive-end boxes [K, 4] drawn by ``source``'s convention, as ``target`` draws them
    (float64; both conventions relative to the same reference)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    reference_width, reference_height = width / source.width, height / source.height
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2 + (target.shift_x - source.shift_x) * reference_width
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2 + (target.shift_y - source.shift_y) * reference_height
    half_width = (target.width * reference_width - 1) / 2
    half_height = (target.height * reference_height - 1) / 2
    return np.stack([centre_x - half_width, centre_y - half_height,
                     centre_x + half_width, centre_y + half_height], axis=1)
