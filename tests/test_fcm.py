import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masksegx import fcm
from reference import fcm_ref, seed_centers_ref

SPLITMIX64_SEED0_FIRST = 0xE220A8397B1DCDAF  # first splitmix64 output for seed 0


def blobs(rng, n_per=40, centres=((0.0, 0.0), (3.0, 1.0), (1.0, 4.0)), spread=0.3):
    points = [rng.normal(c, spread, (n_per, len(c))) for c in centres]
    return np.concatenate(points).astype(np.float32)


def assert_matches_reference(features, k, m, tol, max_iter, init):
    got = fcm.fuzzy_cmeans(features, k, m=m, tol=tol, max_iter=max_iter, init_centers=init)
    centers, u, iterations, objective = fcm_ref(features, init, m=m, tol=tol, max_iter=max_iter)
    assert got.iterations == iterations
    # Centres whose sort keys tie up to float32 rounding may come out in either order.
    distance = np.abs(got.centers[None, :, :] - centers[:, None, :]).max(-1)
    match = distance.argmin(1)
    if sorted(match) != list(range(len(match))):
        match = np.arange(len(match))
    assert np.allclose(got.centers[:, 0], got.centers[match, 0], atol=1e-5)
    np.testing.assert_allclose(got.centers[match], centers, atol=1e-4)
    np.testing.assert_allclose(got.memberships[:, match], u, atol=1e-4)
    np.testing.assert_allclose(got.objective, objective, rtol=1e-4, atol=1e-6)
    return got


@pytest.mark.parametrize("m", [2.0, 1.5, 3.0])
def test_matches_numpy_reference_on_blobs(rng, m):
    features = blobs(rng)
    init = fcm.seed_centers(features, 3, seed=7)
    got = assert_matches_reference(features, 3, m, 1e-4, 100, init)
    assert 1 < got.iterations < 100  # converged by tol
    np.testing.assert_allclose(got.centers, [[0, 0], [1, 4], [3, 1]], atol=0.2)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 60),
    dims=st.integers(1, 6),  # the m = 2 fast path covers k <= 5 and dims <= 4
    k=st.integers(1, 7),
    m=st.sampled_from([2.0, 1.7, 2.5]),
    max_iter=st.integers(0, 12),
    seed=st.integers(0, 2**32 - 1),
    levels=st.sampled_from([3, 1000]),
)
def test_matches_numpy_reference_on_random_inputs(n, dims, k, m, max_iter, seed, levels):
    rng = np.random.default_rng(seed)
    # Few levels give duplicate points, which land exactly on the seeded centres.
    features = (rng.integers(0, levels, (n, dims)) / levels).astype(np.float32)
    # With more clusters than distinct points centres coincide, and memberships on them jump
    # between "shared" and "all to one" on last-bit differences (float32 here, float64 there).
    k = min(k, len(np.unique(features, axis=0)))
    init = fcm.seed_centers(features, k, seed=seed)
    assert_matches_reference(features, k, m, 0.0, max_iter, init)


@pytest.mark.parametrize("scale", [1e-12, 1e12])
@pytest.mark.parametrize("k, dims", [(3, 2), (5, 4), (7, 2)])
def test_extreme_scales_give_the_same_memberships(rng, scale, k, dims):
    # Products of squared distances leave float range here: the kernel must notice.
    features = blobs(rng, centres=np.eye(k, dims) * 3)
    init = fcm.seed_centers(features, k, seed=5)
    base = fcm.fuzzy_cmeans(features, k, init_centers=init, tol=0, max_iter=10)
    factor = np.float32(scale)
    scaled = fcm.fuzzy_cmeans(features * factor, k, init_centers=init * factor, tol=0, max_iter=10)
    np.testing.assert_allclose(scaled.centers / factor, base.centers, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scaled.memberships, base.memberships, atol=1e-5)


def test_memberships_are_a_partition_and_centres_sorted(rng):
    features = rng.random((500, 3), dtype=np.float32)
    result = fcm.fuzzy_cmeans(features, 4, seed=3)
    assert result.centers.shape == (4, 3) and result.centers.dtype == np.float32
    assert result.memberships.shape == (500, 4) and result.memberships.dtype == np.float32
    np.testing.assert_allclose(result.memberships.sum(1), 1.0, atol=1e-6)
    assert (result.memberships >= 0).all()
    assert (np.diff(result.centers[:, 0]) >= 0).all()


def test_centre_ties_are_broken_by_the_next_feature():
    features = np.array([[1, 5], [1, 0], [1, 5], [1, 0], [0, 2]], np.float32)
    init = np.array([[1, 5], [1, 0], [0, 2]], np.float32)
    result = fcm.fuzzy_cmeans(features, 3, init_centers=init, max_iter=0)
    np.testing.assert_array_equal(result.centers, [[0, 2], [1, 0], [1, 5]])
    np.testing.assert_array_equal(result.memberships[:2], [[0, 0, 1], [0, 1, 0]])
    assert isinstance(result.iterations, int) and isinstance(result.objective, float)


def test_same_seed_same_result_and_seed_matters(rng):
    features = rng.random((300, 2), dtype=np.float32)
    a = fcm.fuzzy_cmeans(features, 3, seed=11, max_iter=5, tol=0)
    b = fcm.fuzzy_cmeans(features, 3, seed=11, max_iter=5, tol=0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(fcm.seed_centers(features, 3, seed=11),
                              fcm.seed_centers(features, 3, seed=12))


def test_seeding_is_kmeans_plus_plus_from_splitmix64():
    features = np.arange(10, dtype=np.float32)[:, None]
    centers = fcm.seed_centers(features, 3, seed=0)
    assert centers[0, 0] == SPLITMIX64_SEED0_FIRST % 10
    assert len(set(centers[:, 0])) == 3  # later draws avoid chosen points (distance 0)
    np.testing.assert_array_equal(centers, seed_centers_ref(features, 3, 0))
    identical = np.ones((6, 2), np.float32)
    np.testing.assert_array_equal(fcm.seed_centers(identical, 4), np.ones((4, 2)))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 50), dims=st.integers(1, 3), k=st.integers(1, 6),
       seed=st.integers(0, 2**64 - 1), levels=st.sampled_from([2, 1000]))
def test_seeding_matches_reference(n, dims, k, seed, levels):
    features = (np.random.default_rng(seed % 2**32).integers(0, levels, (n, dims)) / levels)
    features = features.astype(np.float32)
    k = min(k, n)
    np.testing.assert_array_equal(fcm.seed_centers(features, k, seed=seed),
                                  seed_centers_ref(features, k, seed))


def test_point_on_centres_shares_membership_equally():
    features = np.array([[0.0], [1.0], [0.25], [2.0]], np.float32)
    init = np.array([[0.0], [1.0], [1.0]], np.float32)
    u = fcm.fuzzy_cmeans(features, 3, init_centers=init, max_iter=0).memberships
    np.testing.assert_array_equal(u[0], [1, 0, 0])
    np.testing.assert_array_equal(u[1], [0, 0.5, 0.5])
    # m = 2: memberships proportional to 1 / squared distance (1/16 : 9/16 : 9/16 for 0.25).
    np.testing.assert_allclose(u[2], [9 / 11, 1 / 11, 1 / 11], atol=1e-6)
    np.testing.assert_allclose(u[3], [1 / 9, 4 / 9, 4 / 9], atol=1e-6)


def test_single_cluster_and_k_equals_n(rng):
    features = rng.random((7, 2), dtype=np.float32)
    one = fcm.fuzzy_cmeans(features, 1)
    np.testing.assert_allclose(one.centers[0], features.mean(0), atol=1e-6)
    np.testing.assert_array_equal(one.memberships, 1.0)
    every = fcm.fuzzy_cmeans(features, 7, max_iter=0)
    np.testing.assert_array_equal(np.sort(every.memberships.max(1)), np.ones(7))


def test_unweighted_centre_stays_put():
    features = np.zeros((5, 1), np.float32)
    init = np.array([[0.0], [3.0]], np.float32)
    result = fcm.fuzzy_cmeans(features, 2, init_centers=init, max_iter=3)
    np.testing.assert_array_equal(result.centers, init)
    assert result.objective == 0.0


def test_map_features_reshape(rng):
    maps = rng.random((6, 5, 2), dtype=np.float32)
    flat = fcm.fuzzy_cmeans(maps.reshape(-1, 2), 2, seed=1)
    assert flat.memberships.reshape(6, 5, 2).shape == (6, 5, 2)
    with pytest.raises(ValueError, match="features"):
        fcm.fuzzy_cmeans(maps, 2)


def test_other_dtypes_and_layouts_are_converted(rng):
    features = rng.random((40, 3))
    init = features[:2].astype(np.float32)
    ref = fcm.fuzzy_cmeans(features.astype(np.float32), 2, init_centers=init)
    got = fcm.fuzzy_cmeans(np.asfortranarray(features), 2, init_centers=init.astype(np.float64))
    np.testing.assert_array_equal(got.centers, ref.centers)


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        (dict(features=np.zeros((5, 2), "U1")), TypeError, "features"),
        (dict(features=[[0.0, 1.0]]), TypeError, "features"),
        (dict(features=np.zeros(5, np.float32)), ValueError, "features"),
        (dict(features=np.zeros((0, 2), np.float32)), ValueError, "features"),
        (dict(features=np.full((5, 2), np.nan, np.float32)), ValueError, "features"),
        (dict(k=0), ValueError, "k"),
        (dict(k=6), ValueError, "k"),
        (dict(k=2.0), TypeError, "k"),
        (dict(max_iter=1.5), TypeError, "max_iter"),
        (dict(m=1.0), ValueError, "m"),
        (dict(m=np.inf), ValueError, "m"),
        (dict(m=1e39), ValueError, "m"),
        (dict(tol=-1.0), ValueError, "tol"),
        (dict(tol=np.nan), ValueError, "tol"),
        (dict(max_iter=-1), ValueError, "max_iter"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(init_centers=np.zeros((3, 2), np.float32)), ValueError, "init_centers"),
        (dict(init_centers=np.full((2, 2), np.inf, np.float32)), ValueError, "init_centers"),
    ],
)
def test_bad_arguments_raise(kwargs, exc, name):
    args = dict(features=np.arange(10, dtype=np.float32).reshape(5, 2), k=2)
    args.update(kwargs)
    with pytest.raises(exc, match=name):
        fcm.fuzzy_cmeans(args.pop("features"), args.pop("k"), **args)


def test_core_rejects_what_the_wrapper_would_convert():
    from masksegx import _core

    with pytest.raises(TypeError, match="dtype"):
        _core.fuzzy_cmeans(np.zeros((4, 2)), 2)
    with pytest.raises(ValueError, match="contiguous"):
        _core.fuzzy_cmeans(np.zeros((4, 4), np.float32)[:, ::2], 2)
    with pytest.raises(ValueError, match="k"):
        _core.fcm_seed_centers(np.zeros((4, 2), np.float32), 5)
    with pytest.raises(ValueError, match="fuzziness"):
        _core.fuzzy_cmeans(np.zeros((4, 2), np.float32), 2, 0.5)


def test_core_general_m_survives_nan_features():
    # The public wrapper refuses NaN; the raw entry point must still not reach undefined
    # behaviour (NaN into exp2's integer conversion), which the sanitized CI build would flag.
    from masksegx import _core

    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    features[2, 1] = np.nan
    init = features[[0, 5]].copy()
    centers, memberships, _, _ = _core.fuzzy_cmeans(features, 2, 2.5, 1e-4, 3, 0, init)
    # NaN spreads through the centres' second feature to every membership: no finite answer
    # that would look valid.
    assert np.isnan(centers[:, 1]).all() and np.isnan(memberships).all()
