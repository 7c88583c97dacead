"""The paper's spectral face-mask extraction (section 3), as six explicit steps.

``segment_spectral(image)`` treats the image (or the ``region`` box inside it) as a face crop:
face roughly centred, eyes in the upper half, the worn mask over the lower half. Every step
works on that crop and its intermediate maps are returned, so a user can see why a pixel was
chosen:

1. **Pre-processing** - edge-preserving denoising (bilateral filter) and unsharp-mask edge
   enhancement.
2. **Candidate features** - NBRI = (B-R)/(B+R) and NMRI = (S-I)/(S+I) (HSI) per pixel
   (:mod:`masksegx.color`), with the HSI intensity, weighted into a 3-D feature vector
   (intensity separates black and white masks from skin, which the two indices alone
   confuse).
3. **Fuzzy clustering** - fuzzy c-means over the pixels below ``params.top`` of the crop,
   started from a *skin probe* (a window over the eyes/cheeks, above any mask) and a *mask
   probe* (a window over mouth and chin). Memberships are then evaluated over the whole crop;
   clusters that are more present in the mask probe than in the skin probe are the mask
   clusters, and their summed membership is the candidate map.
4. **Region compensation** - the paper's combined algorithm on the candidate region: blue
   suppression ``B' = mu * B`` (eq. 18), then the Minkowski-norm grey world (eq. 19-21) that
   multiplies the region by ``(l(background) / l(region)) ** compensation_strength``.
   ``compensation_strength = 1`` is eq. 21 as written; see :class:`SpectralParams`.
5. **Candidates from the compensated image** - features are recomputed on the compensated
   crop and the fuzzy clustering is refined from the step-3 centres; pixels whose mask
   membership exceeds ``membership_threshold`` are candidates.
6. **Geometric-weighted connectivity analysis** - connected components of the candidates with
   Mi = K^2/area and Po = (X_max/area) * eps (eps = mean local variance of NBRI), filtered by
   :func:`masksegx.regions.geometric_filter` with ``p1``, ``p2``; optionally only components
   touching the mask probe survive; enclosed holes (mask prints, valves) are filled.

The method only sees colour: masks with skin-like colours (beige, pink, some white masks
under warm light) and strongly patterned masks are its known failure cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import cv2
import numpy as np

from . import color, compensate, fcm, filters, regions
from ._validation import (
    as_image,
    as_mask,
    check_bool,
    check_finite,
    check_int,
    check_number,
    check_odd_window,
    mask_box,
    settings_or_default,
)

Box = tuple[int, int, int, int]
#: A probe window of the crop, ``(top, bottom, left, right)`` in pixels (exclusive ends).
Window = tuple[int, int, int, int]
CompensationFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Most clusters :class:`SpectralParams` accepts: memberships take ``clusters`` floats per pixel.
MAX_CLUSTERS = 16


class _Clustering(NamedTuple):
    centers: np.ndarray
    memberships: np.ndarray  # HxWxk over the whole crop


@dataclass(frozen=True)
class SpectralParams:
    """All settings of :func:`segment_spectral`.

    Every field is checked when the object is made: TypeError for a value of the wrong type
    (a string for a number, a number for a bool), ValueError for one out of range.

    Window fields are ``(top, bottom, left, right)`` fractions of the face crop. The defaults
    were chosen by ``tools/tune_spectral.py`` on ``seg/ffhq_synthmask/train`` and the
    training part of ``seg/real_dev``; rerun it to reproduce them.
    """

    # 1. pre-processing
    bilateral_sigma: float = 0.0
    """Colour sigma of the 5x5 bilateral filter (0 disables denoising)."""
    sharpen: float = 0.5
    """Unsharp-mask amount (0 disables edge enhancement)."""
    # 2. candidate features
    nbri_weight: float = 1.0
    nmri_weight: float = 0.1
    intensity_weight: float = 0.5
    skin_probe: tuple[float, float, float, float] = (0.15, 0.40, 0.20, 0.80)
    mask_probe: tuple[float, float, float, float] = (0.60, 0.85, 0.35, 0.65)
    top: float = 0.45
    """No mask is searched above this fraction of the crop height (forehead, eyes)."""
    # 3. fuzzy clustering
    clusters: int = 3
    """2 to :data:`MAX_CLUSTERS`."""
    fuzzifier: float = 2.0
    max_iter: int = 20
    # 4. compensation
    compensation: str | CompensationFn = "none"
    """``"combined"`` (the paper's), ``"none"``, or a callable ``f(image, region) -> image``."""
    blue_mu: float = 0.8
    minkowski_t: float = 6.0
    compensation_strength: float = 1.0
    """Exponent on the eq. 21 gain; 1 is the paper, 0 leaves colours, < 0 pushes apart."""
    # 5. candidates
    membership_threshold: float = 0.4
    # 6. connectivity analysis
    variance_window: int = 5
    p1: float = 8.0
    """Largest Mi = K^2/area of a kept component (a filled square has Mi = 2)."""
    p2: float = 0.5
    """Largest Po = (X_max/area) * eps of a kept component (eps: mean NBRI local variance)."""
    require_mask_probe: bool = True
    fill_holes: bool = True
    connectivity: int = 8

    def __post_init__(self) -> None:
        nonnegative = ("bilateral_sigma", "sharpen", "nbri_weight", "nmri_weight",
                       "intensity_weight", "blue_mu")
        for name in nonnegative:
            check_number(getattr(self, name), name, low=0.0, high=math.inf, high_open=True)
        for name in ("skin_probe", "mask_probe"):
            # Stored as a tuple of floats: a list would leave the params unhashable.
            object.__setattr__(self, name, _probe(getattr(self, name), name))
        check_number(self.top, "top", low=0.0, high=1.0, high_open=True)
        check_int(self.clusters, "clusters", low=2, high=MAX_CLUSTERS)
        check_number(self.fuzzifier, "fuzzifier", low=1.0, low_open=True, high=math.inf,
                     high_open=True)
        check_int(self.max_iter, "max_iter", low=0, high=(1 << 31) - 1)  # as fcm.fuzzy_cmeans
        if not (isinstance(self.compensation, str) and self.compensation in ("combined", "none")
                or callable(self.compensation)):
            raise ValueError("compensation: expected 'combined', 'none' or a callable")
        check_number(self.minkowski_t, "minkowski_t", low=1.0)  # inf: the max-RGB estimate
        check_finite(self.compensation_strength, "compensation_strength")
        check_number(self.membership_threshold, "membership_threshold", low=0.0, high=1.0)
        check_odd_window(self.variance_window, "variance_window")
        for name in ("p1", "p2"):  # regions.geometric_filter wants finite thresholds
            check_number(getattr(self, name), name, low=0.0, low_open=True, high=math.inf,
                         high_open=True)
        check_bool(self.require_mask_probe, "require_mask_probe")
        check_bool(self.fill_holes, "fill_holes")
        if check_int(self.connectivity, "connectivity") not in (4, 8):
            raise ValueError("connectivity: expected 4 or 8")


def _probe(window: object, name: str) -> tuple[float, float, float, float]:
    """A probe window: four fractions ``0 <= top < bottom <= 1``, ``0 <= left < right <= 1``."""
    if isinstance(window, (str, bytes)) or not isinstance(window, (tuple, list, np.ndarray)):
        raise TypeError(f"{name}: expected (top, bottom, left, right), got {type(window).__name__}")
    if len(window) != 4:
        raise ValueError(f"{name}: expected 4 fractions (top, bottom, left, right), got {len(window)}")
    top, bottom, left, right = (check_number(value, name) for value in window)
    if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
        raise ValueError(f"{name}: expected 0 <= top < bottom <= 1 and 0 <= left < right <= 1")
    return top, bottom, left, right


@dataclass(frozen=True)
class SpectralResult:
    """Output of :func:`segment_spectral`; maps other than ``mask`` cover ``box`` only."""

    mask: np.ndarray
    """bool HxW, image size: the worn face mask."""
    box: Box
    """(x0, y0, x1, y1) of the face crop the steps worked on (x1, y1 exclusive)."""
    preprocessed: np.ndarray
    nbri: np.ndarray
    nmri: np.ndarray
    cluster_centers: np.ndarray
    """Step-5 centres, [k, 3] in weighted (NBRI, NMRI, intensity) feature units."""
    mask_clusters: np.ndarray
    """bool [k]: which clusters count as mask."""
    initial_candidates: np.ndarray
    """bool, step 3: mask membership above the threshold before compensation."""
    compensated: np.ndarray
    """uint8 crop after step 4."""
    membership: np.ndarray
    """float32, step 5: summed membership of the mask clusters."""
    candidates: np.ndarray
    """bool, step 5 candidates fed to the connectivity analysis."""
    components: regions.Components
    kept: np.ndarray
    """bool [n]: components kept by step 6."""


def segment_spectral(
    image: np.ndarray,
    *,
    region: None | Box | np.ndarray = None,
    params: SpectralParams | None = None,
) -> SpectralResult:
    """Segment the worn face mask in a BGR uint8 face image with the spectral method.

    Parameters
    ----------
    image : uint8 HxWx3, BGR (as ``cv2.imread`` returns).
    region : None, a box ``(x0, y0, x1, y1)`` (pixels, exclusive end) or a bool HxW mask.
        The face crop to work in; ``None`` means the whole image is a face crop. A box is
        clipped to the image (the crop is its part inside, however far the box reaches out);
        ValueError when less than 4x4 pixels of it are inside (a box outside the image, or
        with ``x1 <= x0`` or ``y1 <= y0``). With a bool mask its bounding box is the crop and
        the result is limited to the mask.
    params : :class:`SpectralParams`, defaults if None.
    """
    params = settings_or_default(params, SpectralParams, "params")
    return _segment_spectral(as_image(image), region, params)


def _segment_spectral(
    image: np.ndarray, region: None | Box | np.ndarray, params: SpectralParams
) -> SpectralResult:
    """:func:`segment_spectral` of an image already validated by :func:`as_image`."""
    box, limit = _resolve_region(region, image.shape[:2])
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    h, w = crop.shape[:2]

    pre = _preprocess(crop, params)
    maps = color._spectral_maps(pre)
    features = _features(maps, params)

    skin_win = _window(params.skin_probe, h, w)
    mask_win = _window(params.mask_probe, h, w)
    top = min(int(round(params.top * h)), h - 1)

    if (h - top) * w < 4 * params.clusters:
        return _nothing_found(image, box, pre, maps, params)

    # Step 3: fuzzy clustering of the pixels below `top`, seeded from the two probes.
    seeds = _seed_centers(features, skin_win, mask_win, params.clusters)
    first = _cluster(features, top, seeds, params)
    mask_clusters = _mask_clusters(first, skin_win, mask_win)
    initial = _candidates(first, mask_clusters, top, params)

    # Step 4: compensation of the candidate region.
    compensated = _compensate(pre, initial, params)

    # Step 5: features of the compensated crop, clustering refined from the step-3 centres.
    if compensated is pre:
        final, comp_maps = first, maps
    else:
        comp_maps = color._spectral_maps(compensated)
        final = _cluster(_features(comp_maps, params), top, first.centers, params)
    membership = final.memberships[..., mask_clusters].sum(-1)
    candidates = _candidates(final, mask_clusters, top, params)

    # Step 6: geometric-weighted connectivity analysis.
    variance = filters._local_variance(comp_maps.nbri, params.variance_window)
    comps = regions._analyze(candidates, variance, params.connectivity)
    kept = regions.geometric_filter(comps, params.p1, params.p2)
    if params.require_mask_probe and comps.count:
        touching = np.zeros(comps.count + 1, bool)
        touching[np.unique(_in_window(comps.labels, mask_win))] = True
        kept &= touching[1:]
    crop_mask = comps.select(kept)
    if params.fill_holes:
        crop_mask = regions._fill_holes(crop_mask)

    mask = np.zeros(image.shape[:2], bool)
    mask[y0:y1, x0:x1] = crop_mask
    if limit is not None:
        mask &= limit
    return SpectralResult(
        mask=mask, box=box, preprocessed=pre, nbri=comp_maps.nbri, nmri=comp_maps.nmri,
        cluster_centers=final.centers, mask_clusters=mask_clusters, initial_candidates=initial,
        compensated=compensated, membership=membership.astype(np.float32), candidates=candidates,
        components=comps, kept=kept,
    )


def _nothing_found(
    image: np.ndarray, box: Box, pre: np.ndarray, maps: color.SpectralMaps, params: SpectralParams
) -> SpectralResult:
    """The result for crops too small to cluster: no mask, no components."""
    h, w = pre.shape[:2]
    empty = np.zeros((h, w), bool)
    components = regions._analyze(empty)
    return SpectralResult(
        mask=np.zeros(image.shape[:2], bool), box=box, preprocessed=pre, nbri=maps.nbri,
        nmri=maps.nmri, cluster_centers=np.zeros((params.clusters, 3), np.float32),
        mask_clusters=np.zeros(params.clusters, bool), initial_candidates=empty, compensated=pre,
        membership=np.zeros((h, w), np.float32), candidates=empty, components=components,
        kept=np.zeros(0, bool),
    )


def _resolve_region(
    region: None | Box | np.ndarray, shape: tuple[int, ...]
) -> tuple[Box, np.ndarray | None]:
    h, w = shape
    if region is None:
        return (0, 0, w, h), None
    if isinstance(region, np.ndarray) and region.ndim == 2:
        limit = as_mask(region, "region", (h, w))
        box = mask_box(limit)
        if box is None:
            raise ValueError("region: mask selects no pixels")
        return box, limit
    try:
        corners = [float(v) for v in region]
        if len(corners) != 4:
            raise ValueError
    except (TypeError, ValueError):
        raise TypeError("region: expected None, a box (x0, y0, x1, y1) or a bool HxW mask") from None
    if not np.isfinite(corners).all():
        raise ValueError(f"region: box values must be finite, got {tuple(region)}")
    x0, y0, x1, y1 = (int(round(v)) for v in corners)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise ValueError(f"region: box {tuple(region)} leaves less than 4x4 pixels inside the image")
    return (x0, y0, x1, y1), None


def _preprocess(crop: np.ndarray, params: SpectralParams) -> np.ndarray:
    out = crop
    if params.bilateral_sigma > 0:
        out = cv2.bilateralFilter(out, 5, params.bilateral_sigma, 5)
    if params.sharpen > 0:
        blurred = cv2.GaussianBlur(out, (0, 0), 1.0)
        out = cv2.addWeighted(out, 1 + params.sharpen, blurred, -params.sharpen, 0)
    return out


def _features(maps: color.SpectralMaps, params: SpectralParams) -> np.ndarray:
    assert maps.intensity is not None  # the maps are computed with_hsi
    return np.stack(
        [maps.nbri * params.nbri_weight, maps.nmri * params.nmri_weight,
         maps.intensity * params.intensity_weight], -1,
    ).astype(np.float32)


def _cluster(features: np.ndarray, top: int, seeds: np.ndarray, params: SpectralParams) -> _Clustering:
    """FCM fitted below `top`; returns centres and HxWxk memberships of the whole crop."""
    h, w, d = features.shape
    fit = fcm._fuzzy_cmeans(features[top:].reshape(-1, d), params.clusters, m=params.fuzzifier,
                            max_iter=params.max_iter, init_centers=seeds)
    # max_iter=0 evaluates memberships for fixed centres (also above `top`, for the probes).
    whole = fcm._fuzzy_cmeans(features.reshape(-1, d), params.clusters, m=params.fuzzifier,
                              max_iter=0, init_centers=fit.centers)
    return _Clustering(whole.centers, whole.memberships.reshape(h, w, -1))


def _candidates(
    clustering: _Clustering, mask_clusters: np.ndarray, top: int, params: SpectralParams
) -> np.ndarray:
    candidates: np.ndarray = clustering.memberships[..., mask_clusters].sum(-1) > params.membership_threshold
    candidates[:top] = False
    return candidates


def _window(fractions: tuple[float, float, float, float], h: int, w: int) -> Window:
    """A probe window ``(top, bottom, left, right)`` from fractions of the crop to pixels."""
    top_f, bottom_f, left_f, right_f = fractions
    top, left = min(int(top_f * h), h - 1), min(int(left_f * w), w - 1)
    return top, max(int(round(bottom_f * h)), top + 1), left, max(int(round(right_f * w)), left + 1)


def _in_window(values: np.ndarray, window: Window) -> np.ndarray:
    top, bottom, left, right = window
    part: np.ndarray = values[top:bottom, left:right]
    return part


def _seed_centers(features: np.ndarray, skin_win: Window, mask_win: Window, k: int) -> np.ndarray:
    """Medians of the skin and mask probes, then quantiles of the whole crop for k > 2."""
    def median(window: Window) -> np.ndarray:
        middle: np.ndarray = np.median(_in_window(features, window).reshape(-1, features.shape[-1]), axis=0)
        return middle

    seeds = [median(skin_win), median(mask_win)]
    flat = features.reshape(-1, features.shape[-1])
    for q in np.linspace(0, 100, k)[1:-1] if k > 2 else []:
        seeds.append(np.percentile(flat, q, axis=0))
    return np.asarray(seeds, np.float32)


def _mask_clusters(clustering: _Clustering, skin_win: Window, mask_win: Window) -> np.ndarray:
    """Clusters more present in the mask probe than in the skin probe."""
    membership = clustering.memberships

    def mean(window: Window) -> np.ndarray:
        average: np.ndarray = _in_window(membership, window).reshape(-1, membership.shape[-1]).mean(0)
        return average

    in_mask, in_skin = mean(mask_win), mean(skin_win)
    chosen = in_mask > in_skin
    if not chosen.any():
        chosen[np.argmax(in_mask - in_skin)] = True
    return chosen


def _compensate(pre: np.ndarray, region: np.ndarray, params: SpectralParams) -> np.ndarray:
    if params.compensation == "none" or not region.any() or region.all():
        return pre
    if callable(params.compensation):
        out = params.compensation(pre, region)
        return as_image(out, "compensation result")
    result = compensate._compensate_region(pre, region, mu=params.blue_mu, t=params.minkowski_t,
                                           strength=params.compensation_strength)
    return result.image

