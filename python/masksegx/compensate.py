"""Mask-region compensation of the spectral method (paper eq. 18-21).

The paper separates the face into the mask region R and the rest, suppresses the blue
component of R (eq. 18), estimates a Minkowski-norm illuminant per channel for both parts
(eq. 19-20) and rescales R so that its illuminant matches the rest (eq. 21).

Conventions
-----------
image   uint8 HxWx3, BGR like ``cv2.imread`` unless ``order="rgb"``; values 0..255.
region  bool HxW (integer 0/1 masks are accepted), True inside R.
t       Minkowski exponent, ``t >= 1`` or ``numpy.inf``: ``t = 1`` is the plain gray world
        (mean), ``t = inf`` the max-RGB estimate, the default 6 sits between them.
Corrected values are rounded to nearest (ties to even, as ``numpy.rint``) and saturated to
0..255. Illuminants are float64 in 0..255 (times ``scale``), in the image's channel order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _core
from ._validation import as_image, as_mask, check_finite, check_number, check_order


class CompensationResult(NamedTuple):
    """Output of :func:`compensate_region`; vectors are float64 (3,) in image channel order."""

    image: np.ndarray
    #: l(background) / l(region) per channel, 1 where it is undefined.
    gain: np.ndarray
    #: Minkowski illuminant of the region after blue suppression (NaN if the region is empty).
    illuminant_region: np.ndarray
    #: Minkowski illuminant outside the region (NaN if the region covers the image).
    illuminant_background: np.ndarray


def _check_mu(mu: object) -> float:
    return check_number(mu, "mu", low=0.0, high=math.inf, high_open=True)


def _check_t(t: object) -> float:
    return check_number(t, "t", low=1.0)  # inf: the max-RGB estimate


def _image_and_region(image: object, region: object) -> tuple[np.ndarray, np.ndarray]:
    image = as_image(image)
    return image, as_mask(region, "region", image.shape[:2])


def blue_suppression(
    image: np.ndarray, region: np.ndarray, mu: float = 0.8, *, order: str = "bgr"
) -> np.ndarray:
    """Eq. 18, ``B' = mu * B`` inside ``region``; a new uint8 image, other values copied.

    ``mu`` must be finite and >= 0 (values above 1 amplify, saturating at 255).
    """
    image, region = _image_and_region(image, region)
    return _core.blue_suppression(image, region, _check_mu(mu), check_order(order))


def minkowski_illuminant(
    image: np.ndarray, region: np.ndarray, t: float = 6.0, *, scale: float = 1.0
) -> np.ndarray:
    """Eq. 19-20 over ``region``: ``scale * mean(v ** t) ** (1 / t)`` per channel, float64 (3,).

    ``scale`` (the paper's constant x) must be finite and > 0. Raises ValueError when the
    region has no pixels.
    """
    image, region = _image_and_region(image, region)
    scale = check_number(scale, "scale", low=0.0, low_open=True, high=math.inf, high_open=True)
    return _core.minkowski_illuminant(image, region, _check_t(t), scale)


def gray_world_minkowski(
    image: np.ndarray, region: np.ndarray, t: float = 6.0, *, order: str = "bgr"
) -> np.ndarray:
    """Eq. 21: ``region`` pixels times ``l(outside) / l(region)`` per channel; others copied.

    Returns an unchanged copy when either side has no pixels; a channel whose region
    illuminant is 0 keeps gain 1. The correction is per channel, so ``order`` is only
    checked (it is accepted for a signature uniform with the other functions).
    """
    check_order(order)
    image, region = _image_and_region(image, region)
    return _core.gray_world_minkowski(image, region, _check_t(t))


def compensate_region(
    image: np.ndarray,
    region: np.ndarray,
    *,
    mu: float = 0.8,
    t: float = 6.0,
    strength: float = 1.0,
    order: str = "bgr",
) -> CompensationResult:
    """The paper's region compensation: :func:`blue_suppression`, then :func:`gray_world_minkowski`.

    Both illuminants are measured after the suppression. ``strength`` is an exponent on the
    eq. 21 gains ``l(background) / l(region)``: 1 (default) is the paper as written and the
    image then equals ``gray_world_minkowski(blue_suppression(image, region, mu), region, t)``
    byte for byte; 0 applies the suppression only; negative values push the region's colour
    away from the background's, which is what the paper says compensation is for
    ("increasing the difference between the facial mask area and other facial areas").
    The C++ kernel reads the image twice (one counting pass, one writing pass).
    When either side has no pixels every gain is 1: the region is only suppressed.
    """
    image, region = _image_and_region(image, region)
    mu, t, strength = _check_mu(mu), _check_t(t), check_finite(strength, "strength")
    return _compensate_region(image, region, mu=mu, t=t, strength=strength, order=order)


def _compensate_region(
    image: np.ndarray,
    region: np.ndarray,
    *,
    mu: float = 0.8,
    t: float = 6.0,
    strength: float = 1.0,
    order: str = "bgr",
) -> CompensationResult:
    """:func:`compensate_region` of an image and a region already validated (:func:`as_image`,
    :func:`as_mask`)."""
    return CompensationResult(
        *_core.compensate_region(image, region, float(mu), float(t), float(strength), check_order(order))
    )
