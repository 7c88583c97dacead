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


def _blue_index(order: str) -> int:
    return 0 if order == "bgr" else 2


def _round_saturate(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def blue_suppression_ref(image, region, mu=0.8, order="bgr"):
    """Eq. 18: blue channel of region pixels times mu, rounded half to even, saturated."""
    out = image.copy()
    blue = _blue_index(order)
    out[region, blue] = _round_saturate(mu * image[region, blue].astype(np.float64))
    return out


def minkowski_illuminant_ref(image, region, t=6.0, scale=1.0):
    """Eq. 19-20: scale * mean(v ** t) ** (1 / t) per channel over region pixels (float64)."""
    values = image[region].astype(np.float64)
    if np.isinf(t):
        return scale * values.max(axis=0)
    return scale * np.mean(values**t, axis=0) ** (1.0 / t)


def gray_world_minkowski_ref(image, region, t=6.0):
    """Eq. 21; returns (image, gain, illuminant_region, illuminant_background)."""
    nan = np.full(3, np.nan)
    inside = minkowski_illuminant_ref(image, region, t) if region.any() else nan
    outside = minkowski_illuminant_ref(image, ~region, t) if (~region).any() else nan
    gain = np.ones(3)
    if region.any() and (~region).any():
        usable = inside > 0
        gain[usable] = outside[usable] / inside[usable]
    out = image.copy()
    out[region] = _round_saturate(image[region] * gain)
    return out, gain, inside, outside


def compensate_region_ref(image, region, mu=0.8, t=6.0, order="bgr"):
    """Blue suppression, then eq. 21 measured on the suppressed image."""
    return gray_world_minkowski_ref(blue_suppression_ref(image, region, mu, order), region, t)


def local_variance_ref(values, window=5):
    """Two-pass float64 variance of every window x window box, reflect-101 borders.

    numpy's "reflect" padding is OpenCV's BORDER_REFLECT_101 (edge not repeated), repeated
    for pads wider than the array, and repeats the only sample of a length-1 axis.
    """
    radius = window // 2
    padded = np.pad(values.astype(np.float64), radius, mode="reflect")
    boxes = np.lib.stride_tricks.sliding_window_view(padded, (window, window))
    return boxes.var(axis=(-2, -1))
