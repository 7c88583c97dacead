import numpy as np
import pytest

from masksegx import color, fcm
from peers import fuzzy_cmeans_numpy

ITERATIONS = 30  # fixed count (tol = 0) so both sides do the same work per iteration


@pytest.fixture(scope="module")
def problem(photo):
    """(features, initial centres): per-pixel (NBRI, NMRI) of the photo, k = 3."""
    maps = color.spectral_maps(photo, with_hsi=False)
    features = np.stack([maps.nbri.ravel(), maps.nmri.ravel()], axis=1)
    return features, fcm.seed_centers(features, 3, seed=0), photo.shape


def group(shape):
    return f"fcm.fuzzy_cmeans {shape[1]}x{shape[0]}"


def test_cpp(benchmark, problem):
    features, init, shape = problem
    benchmark.group = group(shape)
    result = benchmark(fcm.fuzzy_cmeans, features, 3, m=2.0, tol=0.0, max_iter=ITERATIONS,
                       init_centers=init)
    centers, _ = fuzzy_cmeans_numpy(features, init, ITERATIONS)
    np.testing.assert_allclose(result.centers, centers, atol=1e-4)


def test_numpy(benchmark, problem):
    features, init, shape = problem
    benchmark.group = group(shape)
    benchmark(fuzzy_cmeans_numpy, features, init, ITERATIONS)
