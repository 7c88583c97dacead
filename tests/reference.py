"""Plain-numpy reference implementations of every C++ kernel.

Tests compare the kernels against these; the benchmark suites time them as the numpy peers.
They favour being obviously right over being fast.
"""

from __future__ import annotations

import numpy as np


def spectral_maps_ref(image: np.ndarray, order: str = "bgr"):
    """(hue, saturation, intensity, nbri, nmri) with the textbook acos form of HSI hue."""
    img = image.astype(np.float64)
    if order == "bgr":
        b, g, r = img[..., 0], img[..., 1], img[..., 2]
    else:
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
    total = r + g + b
    intensity = total / 765.0
    with np.errstate(divide="ignore", invalid="ignore"):
        saturation = np.where(total > 0, 1.0 - 3.0 * np.minimum(np.minimum(r, g), b) / total, 0.0)
        num = 0.5 * ((r - g) + (r - b))
        den = np.sqrt((r - g) ** 2 + (r - b) * (g - b))
        theta = np.arccos(np.clip(num / den, -1.0, 1.0))
        hue = np.where(b > g, 2 * np.pi - theta, theta) / (2 * np.pi)
        hue = np.where((saturation > 0) & (den > 0), hue, 0.0)
        hue = np.where(hue >= 1.0, 0.0, hue)
        nbri = np.where(b + r > 0, (b - r) / (b + r), 0.0)
        sum_si = saturation + intensity
        nmri = np.where(sum_si > 0, (saturation - intensity) / sum_si, 0.0)
    return hue, saturation, intensity, nbri, nmri
