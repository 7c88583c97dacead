"""Connected components and the paper's geometric-weighted connectivity analysis (eq. 22-24).

Components are numbered ``1..n`` in raster order of their first pixel (top row first, then
left to right); 0 is background. This matches ``scipy.ndimage.label`` and
``cv2.connectedComponents`` with ``cv2.CCL_WU`` (and OpenCV's default for 4-connectivity),
but not OpenCV's default 8-connected algorithms, which scan 2x2 blocks and can number a
component starting on an odd row first.

Scores of component ``i`` (paper eq. 23-24)
-------------------------------------------
K_i   bounding-box diagonal ``sqrt(width^2 + height^2)`` in pixels (box sides count pixels,
      so a single pixel has K = sqrt(2)).
Mi_i  ``K_i^2 / area_i`` (eq. 23): about 2 for a filled square, large for thin or sparse shapes.
eps_i mean of a per-pixel variance map (e.g. local variance of intensity) over the component.
Po_i  ``(X_max / area_i) * eps_i`` (eq. 24), ``X_max`` the largest component area: large for
      small, textured fragments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _core
from ._validation import as_float_map, as_mask, check_instance, check_number, check_size


def _as_2d_mask(mask: object, name: str = "mask") -> np.ndarray:
    shape = mask.shape if isinstance(mask, np.ndarray) else ()
    mask = as_mask(mask, name, shape)
    if mask.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (H, W) mask, got shape {mask.shape}")
    check_size(mask.shape, name)
    return mask


def _check_connectivity(connectivity: int) -> int:
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity: expected 4 or 8, got {connectivity!r}")
    return int(connectivity)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Components:
    """Connected components of a mask with their geometry and texture scores.

    Arrays are read-only; entry ``i`` describes the component labelled ``i + 1``.

    Attributes
    ----------
    labels : int32 (H, W)
        0 = background, components 1..count in raster order of their first pixel.
    count : int
        Number of components ``n``.
    area : int64 (n,)
        Pixels per component.
    bbox : int32 (n, 4)
        ``x, y, width, height`` of each bounding box in pixels (as ``cv2`` stats).
    diagonal : float64 (n,)
        K, the bounding-box diagonal ``sqrt(width^2 + height^2)``.
    mi : float64 (n,)
        Mi = K^2 / area (eq. 23).
    mean_variance : float64 (n,)
        eps, the mean of the variance map over the component (zeros without a map).
    po : float64 (n,)
        Po = (X_max / area) * eps (eq. 24), X_max the largest area.
    """

    labels: np.ndarray
    count: int
    area: np.ndarray
    bbox: np.ndarray
    diagonal: np.ndarray
    mi: np.ndarray
    mean_variance: np.ndarray
    po: np.ndarray

    def select(self, keep: np.ndarray) -> np.ndarray:
        """Union of the components with ``keep[i]`` True, as a bool (H, W) mask."""
        if not isinstance(keep, np.ndarray):
            raise TypeError(f"keep: expected a numpy.ndarray, got {type(keep).__name__}")
        if keep.dtype != np.bool_:
            raise TypeError(f"keep: expected dtype bool, got {keep.dtype}")
        if keep.shape != (self.count,):
            raise ValueError(f"keep: expected shape ({self.count},), got {keep.shape}")
        lookup = np.zeros(self.count + 1, dtype=np.bool_)
        lookup[1:] = keep
        selected: np.ndarray = lookup[self.labels]
        return selected


def label(mask: np.ndarray, *, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Label the connected components of a bool (H, W) mask (integer 0/1 masks accepted).

    Returns ``(labels, n)``: int32 (H, W) labels, 0 = background and components ``1..n`` in
    raster order of their first pixel. ``connectivity`` is 4 (edge neighbours) or 8 (edges
    and corners).
    """
    connectivity = _check_connectivity(connectivity)
    labels, count = _core.label_components(_as_2d_mask(mask), connectivity)
    return labels, int(count)


def analyze(
    mask: np.ndarray, variance: np.ndarray | None = None, *, connectivity: int = 8
) -> Components:
    """Label ``mask`` and measure every component in one labelling and one measuring pass.

    Parameters
    ----------
    mask : bool (H, W)
        Candidate mask pixels (integer 0/1 accepted).
    variance : float (H, W), optional
        Per-pixel texture, e.g. local intensity variance; finite values, converted to float32.
        Without it ``mean_variance`` and ``po`` are zeros.
    connectivity : 4 or 8
    """
    connectivity = _check_connectivity(connectivity)
    mask = _as_2d_mask(mask)
    if variance is not None:
        variance = as_float_map(variance, "variance")
        if variance.shape != mask.shape:
            raise ValueError(f"variance: expected shape {mask.shape}, got {variance.shape}")
    return _analyze(mask, variance, connectivity)


def _analyze(mask: np.ndarray, variance: np.ndarray | None = None, connectivity: int = 8) -> Components:
    """:func:`analyze` of a C-contiguous bool HxW mask and a finite, C-contiguous float32
    variance map of its shape (or None), both already checked."""
    labels, area, bbox, diagonal, mi, eps, po = _core.analyze_components(
        mask, variance, _check_connectivity(connectivity)
    )
    arrays = [_read_only(a) for a in (labels, area, bbox, diagonal, mi, eps, po)]
    labels, area, bbox, diagonal, mi, eps, po = arrays
    return Components(labels, int(area.shape[0]), area, bbox, diagonal, mi, eps, po)


def geometric_filter(components: Components, p1: float, p2: float) -> np.ndarray:
    """Which components to keep as mask: our reading of the paper's eq. 22.

    A component is **rejected** as non-mask when ``Mi > p1`` (too elongated or thin for its
    area) **or** ``Po > p2`` (small and textured relative to the largest component), and kept
    otherwise: ``keep = ~((mi > p1) | (po > p2))``.

    The paper writes ``HQ = (Mi > P1) ∪ (Po < P2)``. We read HQ as the rejection set and
    reverse Po's inequality, because Po = (X_max / x_i) * eps_i grows for small, textured
    fragments, which are the ones to drop; the largest smooth component has the smallest Po.

    Parameters
    ----------
    components : Components
        From :func:`analyze` (with a variance map, else every Po is 0 and only Mi decides).
    p1 : float
        Mi threshold, finite and > 0 (Mi is 2 for a filled square, larger for thin shapes).
    p2 : float
        Po threshold, finite and > 0, in the variance map's units.

    Returns
    -------
    bool (n,)
        ``keep[i]`` for the component labelled ``i + 1``; use ``components.select(keep)``.
    """
    check_instance(components, Components, "components")
    for name, value in (("p1", p1), ("p2", p2)):
        check_number(value, name, low=0.0, low_open=True, high=math.inf, high_open=True)
    return ~((components.mi > p1) | (components.po > p2))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a bool (H, W) mask.

    A hole is a 4-connected background region that does not touch the image border (the dual
    of 8-connected foreground, so a diagonal gap in an outline does not let it leak). Returns a
    new bool (H, W) mask: ``mask`` plus its holes.
    """
    return _fill_holes(_as_2d_mask(mask))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """:func:`fill_holes` of a C-contiguous bool HxW mask already checked."""
    return _core.fill_holes(mask)
