"""Colour features of the spectral method: HSI and the NBRI / NMRI indices (paper eq. 16-17).

All functions take a uint8 HxWx3 image (BGR like ``cv2.imread`` unless ``order="rgb"``) and
return float32 maps computed in one C++ pass.

Ranges
------
hue         [0, 1): fraction of a full turn, 0 = red, 1/3 = green, 2/3 = blue; 0 for greys.
saturation  [0, 1]: ``1 - min(R, G, B) / mean(R, G, B)``; 0 for black.
intensity   [0, 1]: ``mean(R, G, B) / 255``.
NBRI        [-1, 1]: ``(B - R) / (B + R)``; 0 where ``B + R == 0``. Skin is negative, blue masks positive.
NMRI        [-1, 1]: ``(S - I) / (S + I)``; 0 where ``S + I == 0``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _core
from ._validation import as_image, check_bool, check_order


class SpectralMaps(NamedTuple):
    """Per-pixel maps from :func:`spectral_maps` (HSI maps are None with ``with_hsi=False``)."""

    hue: np.ndarray | None
    saturation: np.ndarray | None
    intensity: np.ndarray | None
    nbri: np.ndarray
    nmri: np.ndarray


def spectral_maps(image: np.ndarray, *, order: str = "bgr", with_hsi: bool = True) -> SpectralMaps:
    """HSI, NBRI and NMRI of ``image`` in a single pass."""
    return _spectral_maps(as_image(image), check_order(order), check_bool(with_hsi, "with_hsi"))


def _spectral_maps(image: np.ndarray, order: str = "bgr", with_hsi: bool = True) -> SpectralMaps:
    """:func:`spectral_maps` of an image already validated by :func:`as_image`."""
    return SpectralMaps(*_core.spectral_maps(image, order, with_hsi))


def rgb_to_hsi(image: np.ndarray, *, order: str = "bgr") -> np.ndarray:
    """Convert a uint8 colour image to float32 HxWx3 HSI (channels: hue, saturation, intensity)."""
    return _core.rgb_to_hsi(as_image(image), check_order(order))


def nbri(image: np.ndarray, *, order: str = "bgr") -> np.ndarray:
    """Normalized Blue-Red Index ``(B - R) / (B + R)`` as float32 HxW."""
    return spectral_maps(image, order=order, with_hsi=False).nbri


def nmri(image: np.ndarray, *, order: str = "bgr") -> np.ndarray:
    """Normalized Mask Region Index ``(S - I) / (S + I)`` (HSI saturation, intensity)."""
    return spectral_maps(image, order=order, with_hsi=False).nmri
