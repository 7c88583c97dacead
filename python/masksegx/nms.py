"""Greedy non-maximum suppression of face boxes, in C++ (the MTCNN cascade's NMS).

Boxes are ``(x1, y1, x2, y2)`` pixel coordinates that include the last pixel, as in the
original MTCNN and facenet-pytorch: a box is ``x2 - x1 + 1`` wide and ``y2 - y1 + 1`` high,
and the intersection of two boxes is measured the same way.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._validation import as_float_array


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, *, mode: str = "union"
) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first (ties: lower index first).

    Parameters
    ----------
    boxes : (N, 4) array of x1, y1, x2, y2 (converted to float32); N may be 0.
    scores : (N,) array, higher is better.
    iou_threshold : a box is dropped when its overlap with a better kept box is greater than
        this (so 1.0 keeps every box).
    mode : ``"union"`` for intersection over union, ``"min"`` for intersection over the smaller
        area (MTCNN's last stage: drops boxes nested inside a better one).

    Returns
    -------
    int64 (K,) array of indices into ``boxes``.
    """
    if mode not in ("union", "min"):
        raise ValueError(f"mode: expected 'union' or 'min', got {mode!r}")
    if isinstance(iou_threshold, (bool, np.bool_)) or not isinstance(
        iou_threshold, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"iou_threshold: expected a number, got {type(iou_threshold).__name__}")
    if not np.isfinite(iou_threshold):
        raise ValueError("iou_threshold: must be a finite number")
    if isinstance(boxes, np.ndarray) and boxes.ndim == 2 and boxes.shape == (0, 4):
        if not isinstance(scores, np.ndarray) or scores.shape != (0,):
            raise ValueError("scores: expected one score per box (shape (0,))")
        return np.empty(0, dtype=np.int64)
    boxes = as_float_array(boxes, "boxes", ndim=2)
    if boxes.shape[1] != 4:
        raise ValueError(f"boxes: expected shape (N, 4), got {boxes.shape}")
    scores = as_float_array(scores, "scores", ndim=1)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores: expected {boxes.shape[0]} scores (one per box), got {scores.shape[0]}")
    return _core.nms(boxes, scores, float(iou_threshold), mode)
