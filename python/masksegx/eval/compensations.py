"""The region compensation methods of the paper's Table 3, pluggable into the spectral pipeline.

Every method is a function ``f(image, region=None) -> image``: ``image`` is uint8 HxWx3 BGR,
``region`` the bool HxW candidate mask region the pipeline wants compensated (None = the whole
image). The result is a new uint8 HxWx3 image. Methods that can work locally change only the
region's pixels (statistics from the region, context from the whole image where a filter needs
it); ``gray_world`` is global by definition and changes every pixel. Each docstring says which.

``COMPENSATION_METHODS`` maps the names used by the command line and ``tools/paper_tables.py``
to the functions; ``"combined"`` maps to the string ``"combined"``, which selects the paper's
own compensation (blue suppression + Minkowski gray world) inside the pipeline.
"""

from __future__ import annotations

from typing import Callable, Optional

import cv2
import numpy as np

from ._inputs import image_and_region

Compensation = Callable[[np.ndarray, Optional[np.ndarray]], np.ndarray]

#: Blue-suppression factor mu of the paper's eq. 18.
BLUE_SUPPRESSION = 0.8
#: Multi-scale retinex scales (Gaussian sigmas, pixels).
RETINEX_SIGMAS = (15.0, 80.0, 250.0)
#: Percent clipped at each end by the percentile stretches (colour balance, retinex).
BALANCE_PERCENT = 1.0
#: Levels of the pyramid fusions.
PYRAMID_LEVELS = 4
#: Mertens et al.'s well-exposedness width (intensities in [0, 1]).
EXPOSEDNESS_SIGMA = 0.2


def _paste(original: np.ndarray, changed: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    """``changed`` inside the region, ``original`` outside (both uint8 HxWx3)."""
    if region is None:
        return changed
    out = original.copy()
    out[region] = changed[region]
    return out


def _to_uint8(values: np.ndarray) -> np.ndarray:
    clipped: np.ndarray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return clipped


def _percentile_stretch(values: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    """Per channel, map the region's 1st..99th percentile linearly to 0..255 (clipped);
    a flat channel maps to 0. ``values`` is HxWx3 (any dtype); returns uint8."""
    pixels = values.reshape(-1, 3) if region is None else values[region]
    low, high = np.percentile(pixels, [BALANCE_PERCENT, 100.0 - BALANCE_PERCENT], axis=0)
    span = np.where(high > low, high - low, np.inf)
    return _to_uint8((values.astype(np.float32) - low) * (255.0 / span))


def inhibition(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Blue suppression alone (eq. 18): B := 0.8 * B inside the region. Local."""
    image, region = image_and_region(image, region)
    suppressed = image.copy()
    suppressed[..., 0] = _to_uint8(image[..., 0] * BLUE_SUPPRESSION)
    return _paste(image, suppressed, region)


def gray_world(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Classic gray world: scale each channel so that its mean over the whole image equals the
    mean of the three channel means. Global (the region is ignored)."""
    image, _ = image_and_region(image, region)
    means = image.reshape(-1, 3).mean(axis=0)
    gains = means.mean() / np.maximum(means, 1e-6)
    return _to_uint8(image * gains)


def histogram_equalization(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Equalise the luma (Y of YCrCb) with the histogram of the region's pixels; chroma kept.
    Local."""
    image, region = image_and_region(image, region)
    ycrcb = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
    luma = ycrcb[..., 0]
    if region is None:
        ycrcb[..., 0] = cv2.equalizeHist(luma)
    else:
        ycrcb[..., 0][region] = cv2.equalizeHist(luma[region].reshape(-1, 1)).reshape(-1)
    return _paste(image, cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR), region)


def bilateral(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Edge-preserving smoothing, ``cv2.bilateralFilter(d=9, sigmaColor=75, sigmaSpace=75)``.
    Local (the filter sees the whole image, only region pixels are replaced)."""
    image, region = image_and_region(image, region)
    return _paste(image, cv2.bilateralFilter(image, 9, 75, 75), region)


def _large_gaussian_blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur whose cost does not grow with sigma: blur a downscaled copy (at most
    sigma/8 times smaller, so the blur stays >= 8 pixels wide there) and scale it back up."""
    h, w = values.shape[:2]
    factor = max(1, min(int(sigma // 8), h, w))
    if factor == 1:
        return cv2.GaussianBlur(values, (0, 0), sigma)
    small = cv2.resize(
        values, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def retinex(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Multi-scale retinex: mean over sigmas 15/80/250 of log(1 + I) - log(1 + G_sigma * I), per
    channel, then each channel's 1st..99th percentile over the region stretched to 0..255
    (percentiles, not min..max: a few outliers would otherwise wash the result out). Local
    (surrounds come from the whole image, only region pixels are replaced)."""
    image, region = image_and_region(image, region)
    values = image.astype(np.float32)
    log_image = np.log1p(values)
    msr = np.zeros_like(values)
    for sigma in RETINEX_SIGMAS:
        msr += log_image - np.log1p(_large_gaussian_blur(values, sigma))
    msr /= len(RETINEX_SIGMAS)
    return _paste(image, _percentile_stretch(msr, region), region)


def _clahe_luma(image: np.ndarray) -> np.ndarray:
    """Contrast-enhanced version of ``image``: CLAHE (clip 2, 8x8 tiles) on the YCrCb luma."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
    ycrcb[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(ycrcb[..., 0])
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)


def _exposure_weights(images: list[np.ndarray]) -> list[np.ndarray]:
    """Mertens' well-exposedness, normalised to sum 1 per pixel (float32 HxW each)."""
    weights = [
        np.exp(-((img.astype(np.float32) / 255.0 - 0.5) ** 2) / (2 * EXPOSEDNESS_SIGMA**2)).prod(
            axis=2
        )
        for img in images
    ]
    total = np.maximum(sum(weights), 1e-12)
    return [w / total for w in weights]


def _levels(image: np.ndarray) -> int:
    # Each pyrDown halves the size; stop before a side would drop below 1 pixel.
    return max(1, min(PYRAMID_LEVELS, int(np.log2(max(1, min(image.shape[:2])))) + 1))


def _gaussian_pyramid(values: np.ndarray, levels: int) -> list[np.ndarray]:
    pyramid = [values]
    for _ in range(levels - 1):
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    return pyramid


def _expand(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    return cv2.pyrUp(values, dstsize=(like.shape[1], like.shape[0]))


def gaussian_pyramid_fusion(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Blend the image with its CLAHE-enhanced version by well-exposedness weights smoothed
    through a 4-level Gaussian pyramid (each weight map is reduced to the coarsest level and
    expanded back), the images themselves blended at full resolution. Local (region pixels)."""
    image, region = image_and_region(image, region)
    images = [image, _clahe_luma(image)]
    levels = _levels(image)
    fused = np.zeros(image.shape, np.float32)
    for img, weight in zip(images, _exposure_weights(images)):
        pyramid = _gaussian_pyramid(weight, levels)
        smooth = pyramid[-1]
        for finer in reversed(pyramid[:-1]):
            smooth = _expand(smooth, finer)
        fused += smooth[..., None] * img.astype(np.float32)
    return _paste(image, _to_uint8(fused), region)


def laplacian_pyramid_fusion(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Mertens-style exposure fusion of the image and its CLAHE-enhanced version: Laplacian
    pyramids of the images blended with Gaussian pyramids of the well-exposedness weights,
    4 levels, then collapsed. Local (region pixels)."""
    image, region = image_and_region(image, region)
    images = [image, _clahe_luma(image)]
    levels = _levels(image)
    fused: list[np.ndarray] = []
    for img, weight in zip(images, _exposure_weights(images)):
        gauss = _gaussian_pyramid(img.astype(np.float32), levels)
        laplace = [g - _expand(coarser, g) for g, coarser in zip(gauss[:-1], gauss[1:])] + [
            gauss[-1]
        ]
        weights = _gaussian_pyramid(weight, levels)
        blended = [lap * w[..., None] for lap, w in zip(laplace, weights)]
        fused = blended if not fused else [f + b for f, b in zip(fused, blended)]
    result = fused[-1]
    for finer in reversed(fused[:-1]):
        result = _expand(result, finer) + finer
    return _paste(image, _to_uint8(result), region)


def color_balance(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Simplest colour balance: per channel, the region's 1st..99th percentile stretched to
    0..255 (clipped). Local."""
    image, region = image_and_region(image, region)
    return _paste(image, _percentile_stretch(image, region), region)


def inverse_projection(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Histogram back-projection of a non-mask colour model.

    The hue-saturation histogram (HSV, 30 x 32 bins) of the pixels outside the region -- skin,
    hair, background: what the mask is not -- is back-projected onto the region. A region
    pixel with back-projected likelihood p (0..1, histogram peak = 1) is moved towards the
    median colour of the outside pixels by the fraction p: skin-like pixels inside the
    candidate region become clearly non-mask for NBRI/NMRI, mask-coloured ones (p near 0)
    stay, so the mask/skin contrast grows. Local; without outside pixels (region None or
    everything) there is no model and the image is returned unchanged.
    """
    image, region = image_and_region(image, region)
    if region is None or region.all():
        return image.copy()
    outside = (~region).astype(np.uint8)
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    ranges = [0, 180, 0, 256]
    model = cv2.calcHist([hsv], [0, 1], outside, [30, 32], ranges)
    cv2.normalize(model, model, 0, 255, cv2.NORM_MINMAX)
    likelihood = (
        cv2.calcBackProject([hsv], [0, 1], model, ranges, scale=1).astype(np.float32) / 255.0
    )
    typical = np.median(image[~region], axis=0)
    pulled = image + likelihood[..., None] * (typical - image.astype(np.float32))
    return _paste(image, _to_uint8(pulled), region)


COMPENSATION_METHODS: dict[str, str | Compensation] = {
    "combined": "combined",
    "none": "none",
    "inhibition": inhibition,
    "gray_world": gray_world,
    "histogram_equalization": histogram_equalization,
    "bilateral": bilateral,
    "retinex": retinex,
    "gaussian_pyramid_fusion": gaussian_pyramid_fusion,
    "laplacian_pyramid_fusion": laplacian_pyramid_fusion,
    "color_balance": color_balance,
    "inverse_projection": inverse_projection,
}
