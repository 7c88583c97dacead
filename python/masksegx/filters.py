"""Neighbourhood filters: local variance, the texture feature of the connectivity analysis.

Maps are 2-D HxW arrays: uint8 (grey images, values 0..255) or float32 (for example the NBRI
map in [-1, 1]); other dtypes raise TypeError rather than being converted silently.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._validation import check_size


def local_variance(values: np.ndarray, window: int = 5) -> np.ndarray:
    """Variance of the ``window`` x ``window`` box centred on each pixel, float32 HxW.

    ``E[x^2] - E[x]^2`` over the box, in squared units of ``values`` (0..65025/4 for uint8);
    tiny negative rounding results are clamped to 0, so flat areas give exactly 0.

    Parameters
    ----------
    values
        uint8 or float32 HxW map; float maps must be finite (ValueError otherwise).
        Non-contiguous views are copied.
    window
        Odd box side, 1 to 65535 (ValueError otherwise); ``window=1`` gives zeros. It may
        exceed the image.

    Notes
    -----
    Borders are reflected without repeating the edge pixel (OpenCV's BORDER_REFLECT_101,
    ``numpy.pad(mode="reflect")``), periodically for windows wider than the image, so the
    result equals ``cv2.boxFilter``-based computations. An axis of length 1 repeats its only
    sample: a single row gives the variance along the row, a 1x1 map gives 0.
    Precision: uint8 maps use exact integer sums, so the result is the exact variance
    rounded to float32 (relative error below 2e-7). float32 maps use float64 sums and match
    a float64 two-pass computation within 2e-6 relative plus 1e-12 * max(values**2)
    absolute, so a small variance on a large offset (values near 1e3) keeps its digits.
    """
    if not isinstance(values, np.ndarray):
        raise TypeError(f"values: expected a numpy.ndarray, got {type(values).__name__}")
    if values.dtype not in (np.uint8, np.float32):
        raise TypeError(f"values: expected dtype uint8 or float32, got {values.dtype}")
    if values.ndim != 2:
        raise ValueError(f"values: expected a 2-D (H, W) map, got shape {values.shape}")
    check_size(values.shape, "values")
    return _local_variance(np.ascontiguousarray(values), window)


def _local_variance(values: np.ndarray, window: int) -> np.ndarray:
    """:func:`local_variance` of a C-contiguous uint8 or float32 HxW map already checked."""
    if isinstance(window, (bool, np.bool_)) or not isinstance(window, (int, np.integer)):
        raise TypeError(f"window: expected an int, got {type(window).__name__}")
    return _core.local_variance(values, int(window))
