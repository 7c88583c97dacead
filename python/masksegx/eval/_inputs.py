"""Argument handling shared by the baseline segmenters and the compensation methods."""

from __future__ import annotations

import numpy as np

from .._validation import as_image, as_mask, mask_box


def image_and_region(image: object, region: object) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a BGR uint8 HxWx3 image and an optional bool HxW region of the same size."""
    image = as_image(image)
    if region is None:
        return image, None
    return image, as_mask(region, "region", image.shape[:2])


def region_box(region: np.ndarray | None, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Bounding box ``(x0, y0, x1, y1)`` (exclusive ends) of ``region``, or the whole image."""
    box = None if region is None else mask_box(region)
    return box if box is not None else (0, 0, int(shape[1]), int(shape[0]))


#: Where a worn face mask sits in a face (or lower-face) box, as fractions (x0, y0, x1, y1) of
#: the box: the lower half, central 70 %. The seed of the prior-based baselines.
LOWER_CENTRE = (0.15, 0.5, 0.85, 0.95)


def box_part(
    region: np.ndarray | None,
    shape: tuple[int, ...],
    fractions: tuple[float, float, float, float],
) -> tuple[int, int, int, int]:
    """The sub-box ``(x0, y0, x1, y1)`` of the region's box at ``fractions``; at least 1x1."""
    x0, y0, x1, y1 = region_box(region, shape)
    w, h = x1 - x0, y1 - y0
    fx0, fy0, fx1, fy1 = fractions
    bx0, by0 = x0 + int(fx0 * w), y0 + int(fy0 * h)
    bx1, by1 = x0 + int(np.ceil(fx1 * w)), y0 + int(np.ceil(fy1 * h))
    return bx0, by0, max(bx1, bx0 + 1), max(by1, by0 + 1)
