"""Fastest Python-side implementations we know of, timed beside the C++ kernels.

Unlike tests/reference.py (float64, written to be obviously right) these use float32 and
OpenCV where it helps, so the ratios in the README compare against a fair opponent.
"""

from __future__ import annotations

import cv2
import numpy as np


def spectral_maps_numpy(image: np.ndarray):
    """HSI + NBRI + NMRI in float32 numpy (hue via arctan2)."""
    img = image.astype(np.float32)
    b, g, r = img[..., 0], img[..., 1], img[..., 2]
    total = b + g + r
    intensity = total * np.float32(1 / 765)
    safe_total = np.where(total > 0, total, 1)
    saturation = np.where(total > 0, 1 - 3 * np.minimum(np.minimum(r, g), b) / safe_total, 0)
    hue = np.arctan2(np.sqrt(np.float32(3)) * (g - b), 2 * r - g - b) / np.float32(2 * np.pi)
    hue = np.where(hue < 0, hue + 1, hue)
    br = b + r
    nbri = np.where(br > 0, (b - r) / np.where(br > 0, br, 1), 0)
    si = saturation + intensity
    nmri = np.where(si > 0, (saturation - intensity) / np.where(si > 0, si, 1), 0)
    return hue, saturation, intensity, nbri, nmri


def spectral_maps_opencv(image: np.ndarray):
    """OpenCV's HSV conversion stands in for HSI; the indices still need numpy."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV_FULL)
    b, _, r = cv2.split(image.astype(np.float32))
    nbri = cv2.divide(b - r, b + r + 1e-6)
    s = hsv[..., 1].astype(np.float32) * np.float32(1 / 255)
    v = hsv[..., 2].astype(np.float32) * np.float32(1 / 255)
    nmri = cv2.divide(s - v, s + v + 1e-6)
    return hsv, nbri, nmri
