"""The segmentation methods of the paper's Table 4, as comparable baselines.

Every method is a function ``f(image, region=None) -> mask``: ``image`` is uint8 HxWx3 BGR,
``region`` an optional bool HxW area of interest (for example the lower face), and the result
a bool HxW mask of the worn face mask, False outside ``region``. Statistics (thresholds,
cluster centres, colour models) are computed from the region's pixels when one is given.
All methods are deterministic. ``SEGMENTATION_METHODS`` maps the names used by the command
line and ``tools/paper_tables.py`` to the functions.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import cv2
import numpy as np

from ..color import nbri, spectral_maps
from ..fcm import fuzzy_cmeans
from ..spectral import SpectralParams, segment_spectral
from ._inputs import LOWER_CENTRE, box_part, image_and_region
from .compensations import Compensation

Segmenter = Callable[[np.ndarray, Optional[np.ndarray]], np.ndarray]


def _restrict(mask: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    return mask if region is None else mask & region


def _pixels(values: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    return values.reshape(-1) if region is None else values[region]


def _index_to_uint8(index: np.ndarray) -> np.ndarray:
    """Map an index in [-1, 1] (NBRI, NMRI) to 0..255 for the 8-bit OpenCV routines."""
    return np.rint((index + 1.0) * 127.5).astype(np.uint8)


def _otsu_level(values_u8: np.ndarray) -> float:
    level, _ = cv2.threshold(values_u8.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return level


def spectral(
    image: np.ndarray,
    region: np.ndarray | None = None,
    *,
    compensation: None | str | Compensation = None,
) -> np.ndarray:
    """The paper's spectral pipeline (:func:`masksegx.spectral.segment_spectral`).

    ``compensation`` replaces the pipeline's default region compensation (Table 3):
    ``"combined"`` (the paper's), ``"none"`` or a callable from
    :data:`masksegx.eval.compensations.COMPENSATION_METHODS`.
    """
    image, region = image_and_region(image, region)
    if region is not None and not region.any():
        return np.zeros(image.shape[:2], bool)  # as every baseline: empty region, empty mask
    params = SpectralParams()
    if compensation is not None:
        params = dataclasses.replace(params, compensation=compensation)
    return _restrict(segment_spectral(image, region=region, params=params).mask, region)


def threshold(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Otsu threshold on NBRI: mask = NBRI above the Otsu level of the (region's) NBRI values.

    NBRI is quantised to 256 levels over [-1, 1] for Otsu; the plain baseline of the paper.
    """
    image, region = image_and_region(image, region)
    index = _index_to_uint8(nbri(image))
    return _restrict(index > _otsu_level(_pixels(index, region)), region)


def fcm(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Fuzzy c-means (k=2, m=2) on per-pixel (NBRI, NMRI); mask = the cluster whose centre has
    the higher NBRI, each pixel assigned to its highest-membership cluster."""

    image, region = image_and_region(image, region)
    maps = spectral_maps(image, with_hsi=False)
    features = np.stack([_pixels(maps.nbri, region), _pixels(maps.nmri, region)], axis=1)
    mask = np.zeros(image.shape[:2], dtype=bool)
    if len(features) < 2:  # two clusters need two pixels
        return mask
    result = fuzzy_cmeans(np.ascontiguousarray(features, dtype=np.float32), 2)
    # Centres come sorted by the first feature (NBRI), so cluster 1 is the bluer one.
    is_mask = result.memberships.argmax(axis=1) == 1
    if region is None:
        whole: np.ndarray = is_mask.reshape(mask.shape)
        return whole
    mask[region] = is_mask
    return mask


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Set every background component that does not touch the image border."""
    count, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = np.ones(count, dtype=bool)
    enclosed[border] = False
    enclosed[0] = False  # label 0 = the mask itself
    filled: np.ndarray = mask | enclosed[labels]
    return filled


# Seeds of the edge-based method, as fractions of the region's box: the mask's core, and the
# forehead band and upper sides that a worn mask never covers.
_EDGE_MASK_SEED = (0.3, 0.6, 0.7, 0.85)
_EDGE_BACKGROUND_SEEDS = ((0.0, 0.0, 1.0, 0.15), (0.0, 0.0, 0.05, 0.5), (0.95, 0.0, 1.0, 0.5))


def edge(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Edge-based segmentation: colour Canny contours closed by a seeded watershed.

    1. Canny (hysteresis thresholds 30 and 60 on the 3x3 Sobel L1 gradient, i.e. steps of
       roughly 8-15 levels) on each channel of the Gaussian-smoothed (5x5, sigma 1.5) image;
       a pixel is an edge if it is one in any channel. Per channel rather than on grey
       because mask/skin/background boundaries are often nearly isoluminant.
    2. Relief = 255 - 8 * (distance to the nearest edge pixel), so ridges lie on the edges.
    3. Seeded watershed on the relief closes the gaps of the edge map: mask seed = the core of
       the region's box (x 30-70 %, y 60-85 %), background seeds = its top 15 % band, the
       outer 5 % columns of its upper half and everything outside the region. Basins meet on
       Canny edges where there are any, midway between seeds elsewhere.
    4. Mask = the mask seed's basin with enclosed holes filled.
    """
    image, region = image_and_region(image, region)
    smooth = cv2.GaussianBlur(image, (5, 5), 1.5)
    edges = np.zeros(image.shape[:2], dtype=bool)
    for channel in cv2.split(smooth):
        edges |= cv2.Canny(channel, 30, 60) > 0
    distance = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3)
    # Capped: without any edge the distance is huge, and the relief must stay in 0..255.
    relief = (255.0 - 8.0 * np.minimum(distance, 255.0 / 8.0)).astype(np.uint8)

    background, mask_label = 1, 2
    markers = np.zeros(edges.shape, dtype=np.int32)
    for fractions in _EDGE_BACKGROUND_SEEDS:
        x0, y0, x1, y1 = box_part(region, edges.shape, fractions)
        markers[y0:y1, x0:x1] = background
    x0, y0, x1, y1 = box_part(region, edges.shape, _EDGE_MASK_SEED)
    markers[y0:y1, x0:x1] = mask_label
    if region is not None:
        markers[~region] = background
    cv2.watershed(cv2.cvtColor(relief, cv2.COLOR_GRAY2BGR), markers)
    return _restrict(_fill_holes(markers == mask_label), region)


# Line structuring elements of the morphological curvature operator (Marquez-Neila et al.,
# "A morphological approach to curvature-based evolution of curves and surfaces", 2014).
_LINES = [
    np.eye(3, dtype=np.uint8),
    np.fliplr(np.eye(3, dtype=np.uint8)).copy(),
    np.array([[0, 1, 0]] * 3, dtype=np.uint8),
    np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=np.uint8),
]
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def _sup_inf(u: np.ndarray) -> np.ndarray:
    opened: np.ndarray = np.maximum.reduce([cv2.erode(u, line) for line in _LINES])
    return opened


def _inf_sup(u: np.ndarray) -> np.ndarray:
    closed: np.ndarray = np.minimum.reduce([cv2.dilate(u, line) for line in _LINES])
    return closed


def level_set(
    image: np.ndarray,
    region: np.ndarray | None = None,
    *,
    iterations: int = 60,
    smoothing: int = 1,
) -> np.ndarray:
    """Morphological Chan-Vese (two-phase, lambda1 = lambda2 = 1) on NBRI.

    The level set starts as the lower-centre box of the region (x 15-85 %, y 50-95 %) and
    evolves for a fixed ``iterations`` steps: each step moves the pixels next to the contour
    (morphological gradient, 3x3 cross) to the phase whose mean NBRI is closer, then applies
    ``smoothing`` rounds of the curvature operator (alternating SI o IS and IS o SI). Phase
    means use only region pixels.
    """
    image, region = image_and_region(image, region)
    values = nbri(image).astype(np.float64)
    inside = np.ones(values.shape, dtype=bool) if region is None else region
    x0, y0, x1, y1 = box_part(region, values.shape, LOWER_CENTRE)
    u = np.zeros(values.shape, dtype=np.uint8)
    u[y0:y1, x0:x1] = 1
    u &= inside

    for step in range(iterations):
        phase = u.astype(bool)
        fg, bg = phase & inside, ~phase & inside
        if not fg.any() or not bg.any():
            break
        c1, c0 = values[fg].mean(), values[bg].mean()
        # Only pixels on either side of the current contour may switch phase.
        boundary = cv2.morphologyEx(u, cv2.MORPH_GRADIENT, _CROSS) > 0
        closer_to_fg = (values - c1) ** 2 - (values - c0) ** 2
        u[boundary & (closer_to_fg < 0)] = 1
        u[boundary & (closer_to_fg > 0)] = 0
        for _ in range(smoothing):
            u = _sup_inf(_inf_sup(u)) if step % 2 == 0 else _inf_sup(_sup_inf(u))
        u &= inside
    return u.astype(bool)


def graph_cut(
    image: np.ndarray, region: np.ndarray | None = None, *, iterations: int = 3
) -> np.ndarray:
    """GrabCut (colour GMMs + graph cut) seeded by the region's lower-centre box.

    Initial labels: outside the region definite background, the lower-centre box (x 15-85 %,
    y 50-95 % of the region's box) probable foreground, the rest probable background; the
    result is probable + definite foreground after ``iterations`` rounds. OpenCV's random
    generator (used by GrabCut's k-means) is re-seeded for reproducible results.
    """
    image, region = image_and_region(image, region)
    labels = np.full(image.shape[:2], cv2.GC_PR_BGD, dtype=np.uint8)
    x0, y0, x1, y1 = box_part(region, image.shape, LOWER_CENTRE)
    labels[y0:y1, x0:x1] = cv2.GC_PR_FGD
    if region is not None:
        labels[~region] = cv2.GC_BGD
    is_fg: np.ndarray = labels == cv2.GC_PR_FGD
    # GrabCut's GMMs need at least a few samples on each side.
    if np.count_nonzero(is_fg) < 10 or np.count_nonzero(~is_fg) < 10:
        return is_fg
    cv2.setRNGSeed(0)
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    # rect (None) is unused with GC_INIT_WITH_MASK; OpenCV's stubs do not allow None there.
    cv2.grabCut(image, labels, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    return _restrict((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD), region)


SEGMENTATION_METHODS: dict[str, Segmenter] = {
    "spectral": spectral,
    "threshold": threshold,
    "fcm": fcm,
    "edge": edge,
    "level_set": level_set,
    "graph_cut": graph_cut,
}
