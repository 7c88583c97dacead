"""Fuzzy c-means clustering (Bezdek) of per-pixel features, the paper's section 3 step (3).

Features are a float32 ``(N, D)`` array: one row per pixel, one column per feature. For an
``(H, W, D)`` map pass ``maps.reshape(-1, D)`` and reshape the memberships back with
``result.memberships.reshape(H, W, k)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _core
from ._validation import as_float_array, check_int, check_number


class FCMResult(NamedTuple):
    """Output of :func:`fuzzy_cmeans`.

    centers : float32 (k, D), sorted by their first feature, ascending (ties: next features).
    memberships : float32 (N, k), rows sum to 1; column j belongs to ``centers[j]``.
    iterations : number of centre updates performed.
    objective : ``sum_ij u_ij^m * |x_i - c_j|^2`` for the returned centres and memberships.
    """

    centers: np.ndarray
    memberships: np.ndarray
    iterations: int
    objective: float


def _check_k(k: int, n_points: int) -> int:
    return check_int(k, "k", low=1, high=n_points)


def _check_seed(seed: int) -> int:
    return check_int(seed, "seed", low=0, high=(1 << 64) - 1)


def fuzzy_cmeans(
    features: np.ndarray,
    k: int,
    *,
    m: float = 2.0,
    tol: float = 1e-4,
    max_iter: int = 100,
    seed: int = 0,
    init_centers: np.ndarray | None = None,
) -> FCMResult:
    """Cluster ``features`` into ``k`` fuzzy clusters.

    Each iteration sets memberships ``u_ij = 1 / sum_l (d_ij / d_il)^(2 / (m - 1))``
    (``d`` = Euclidean distance to a centre) and moves every centre to
    ``sum_i u_ij^m x_i / sum_i u_ij^m``; it stops when no centre moved by ``tol`` or more
    (Euclidean, feature units) or after ``max_iter`` updates. ``tol=0`` always runs
    ``max_iter`` updates. A point lying exactly on one or more centres has membership 1 there,
    split equally among them. A centre that no point weighs at all stays where it is.

    The returned centres are sorted by their first feature (ascending; ties broken by the
    next features) and the memberships are computed from the returned centres, so cluster
    order is stable between runs and platforms. Results are identical between runs; float32
    arithmetic may differ in the last bits between compilers.

    Parameters
    ----------
    features : float (N, D)
        Finite feature vectors, one row per pixel (converted to float32).
    k : int
        Number of clusters, ``1 <= k <= N``.
    m : float
        Fuzziness, > 1. 2 is the usual choice and much faster than other values, whose
        powers need exp2/log2 per point and cluster.
    tol : float
        Convergence threshold on the largest centre move, >= 0.
    max_iter : int
        Most centre updates, >= 0 (0 returns the memberships of the initial centres).
    seed : int
        Seed of the k-means++ initialisation (a splitmix64 stream in C++, identical on every
        platform); ignored when ``init_centers`` is given.
    init_centers : float (k, D), optional
        Starting centres instead of the seeded ones.
    """
    features = as_float_array(features, "features", ndim=2)
    if init_centers is not None:
        init_centers = as_float_array(init_centers, "init_centers", ndim=2)
    return _fuzzy_cmeans(
        features, k, m=m, tol=tol, max_iter=max_iter, seed=seed, init_centers=init_centers
    )


def _fuzzy_cmeans(
    features: np.ndarray,
    k: int,
    *,
    m: float = 2.0,
    tol: float = 1e-4,
    max_iter: int = 100,
    seed: int = 0,
    init_centers: np.ndarray | None = None,
) -> FCMResult:
    """:func:`fuzzy_cmeans` of finite, C-contiguous float32 features (and starting centres)
    already checked by :func:`as_float_array`; the settings are checked here."""
    n_points, dims = features.shape
    k = _check_k(k, n_points)
    m = check_number(m, "m", low=1.0, low_open=True, high=math.inf, high_open=True)
    tol = check_number(tol, "tol", low=0.0, high=math.inf, high_open=True)
    max_iter = check_int(max_iter, "max_iter", low=0, high=(1 << 31) - 1)
    seed = _check_seed(seed)
    if init_centers is not None:
        if init_centers.shape != (k, dims):
            raise ValueError(
                f"init_centers: expected shape ({k}, {dims}), got {init_centers.shape}"
            )
    centers, memberships, iterations, objective = _core.fuzzy_cmeans(
        features, k, m, tol, max_iter, seed, init_centers
    )
    return FCMResult(centers, memberships, int(iterations), float(objective))


def seed_centers(features: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """The k-means++ starting centres ``fuzzy_cmeans`` uses for ``seed`` (float32 (k, D)).

    The first centre is a uniformly drawn point; each next one is drawn with probability
    proportional to the squared distance to its nearest chosen centre.
    """
    features = as_float_array(features, "features", ndim=2)
    return _core.fcm_seed_centers(features, _check_k(k, features.shape[0]), _check_seed(seed))
