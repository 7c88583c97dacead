import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from masksegx import filters
from reference import local_variance_ref

windows = st.sampled_from([1, 3, 5, 7, 13, 15, 17, 31])  # direct int32, direct double, running


def assert_variance_close(got, values, window):
    """The documented precision: uint8 sums are exact, so only float32 rounding remains;
    float32 input adds float64 running-sum rounding, scaled by max(values^2)."""
    want = local_variance_ref(values, window)
    assert got.dtype == np.float32 and got.shape == values.shape
    if values.dtype == np.uint8:
        np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-12)
    else:
        scale = float(np.max(np.abs(values.astype(np.float64)))) ** 2
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-12 * scale + 1e-30)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30))), windows)
def test_uint8_matches_reference(values, window):
    assert_variance_close(filters.local_variance(values, window), values, window)


finite_floats = st.floats(-1000, 1000, width=32, allow_subnormal=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=finite_floats), windows)
def test_float32_matches_reference(values, window):
    assert_variance_close(filters.local_variance(values, window), values, window)


def test_small_variance_on_a_large_offset_keeps_its_precision(rng):
    # Catastrophic cancellation in float32 would lose this completely: E[x^2] ~ 1e6, var ~ 1e-2.
    values = (1000 + 0.1 * rng.standard_normal((40, 50))).astype(np.float32)
    got = filters.local_variance(values, 5)
    want = local_variance_ref(values, 5)
    np.testing.assert_allclose(got, want, rtol=1e-4)


@pytest.mark.parametrize("window", [3, 5, 9, 21, 63, 183, 201])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_equals_opencv_box_filters(rng, window, dtype):
    # window 183+ takes the double sums for uint8, 17+ the running window sums.
    values = rng.integers(0, 256, (37, 52)).astype(dtype)
    as64 = values.astype(np.float64)
    box = dict(ddepth=-1, ksize=(window, window), borderType=cv2.BORDER_REFLECT_101)
    mean = cv2.boxFilter(as64, **box)
    want = np.maximum(cv2.sqrBoxFilter(as64, **box) - mean * mean, 0)
    np.testing.assert_allclose(filters.local_variance(values, window), want, rtol=2e-6, atol=1e-6)


def test_windows_wider_than_the_image_reflect_periodically():
    values = np.array([[1, 2, 3]], np.float32)
    # Row 0 of a 9-wide reflect-101 window at x=0 reads 1 2 3 2 1 2 3 2 1 (rows repeat the row).
    samples = np.array([1, 2, 3, 2, 1, 2, 3, 2, 1], np.float64)
    assert filters.local_variance(values, 9)[0, 0] == pytest.approx(samples.var(), rel=1e-6)
    assert_variance_close(filters.local_variance(values, 101), values, 101)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (2, 2)])
def test_tiny_maps(rng, shape):
    values = rng.integers(0, 256, shape, dtype=np.uint8)
    for window in (1, 3, 7):
        assert_variance_close(filters.local_variance(values, window), values, window)
    assert np.all(filters.local_variance(values[:1, :1], 5) == 0)
    if shape[1] == 1:  # a single column only varies along the column
        np.testing.assert_array_equal(filters.local_variance(values.T.copy(), 3).T,
                                      filters.local_variance(values, 3))


def test_window_one_and_flat_maps_are_exactly_zero(rng):
    values = rng.random((9, 11)).astype(np.float32)
    assert not filters.local_variance(values, 1).any()
    assert not filters.local_variance(np.full((9, 11), 0.3, np.float32), 5).any()
    assert not filters.local_variance(np.full((9, 11), 200, np.uint8), 7).any()


def test_nbri_like_map_and_grey_image_agree_with_scaling(rng):
    grey = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    scaled = (grey / np.float32(127.5) - 1).astype(np.float32)  # in [-1, 1] like NBRI
    np.testing.assert_allclose(filters.local_variance(scaled), filters.local_variance(grey) / 127.5**2,
                               rtol=1e-5, atol=1e-9)


def test_non_contiguous_input_is_copied(rng):
    values = rng.random((20, 30)).astype(np.float32)
    view = values[::2, ::3]
    np.testing.assert_array_equal(filters.local_variance(view), filters.local_variance(view.copy()))


@pytest.mark.parametrize(
    "values, window, exc, words",
    [
        (np.zeros((4, 4), np.float64), 5, TypeError, "uint8 or float32"),
        (np.zeros((4, 4), np.int16), 5, TypeError, "uint8 or float32"),
        ([[1.0, 2.0]], 5, TypeError, "numpy.ndarray"),
        (np.zeros((4, 4, 1), np.uint8), 5, ValueError, "2-D"),
        (np.zeros((0, 4), np.float32), 5, ValueError, "empty"),
        (np.zeros((4, 4), np.float32), 4, ValueError, "window"),
        (np.zeros((4, 4), np.float32), 0, ValueError, "window"),
        (np.zeros((4, 4), np.float32), -3, ValueError, "window"),
        (np.zeros((4, 4), np.float32), 65537, ValueError, "window"),
        (np.zeros((4, 4), np.float32), 5.0, TypeError, "window"),
        (np.array([[0, np.nan], [1, 2]], np.float32), 3, ValueError, "NaN"),
        (np.array([[0, 1, 2], [1, 2, np.inf]], np.float32), 1, ValueError, "NaN or infinity"),
        (np.array([[-np.inf, 1, 2]], np.float32), 5, ValueError, "NaN or infinity"),
    ],
)
def test_bad_inputs_raise(values, window, exc, words):
    with pytest.raises(exc, match="values|window") as info:
        filters.local_variance(values, window)
    assert words in str(info.value)


def test_core_checks_its_own_arguments():
    from masksegx import _core

    with pytest.raises(TypeError, match="values: expected dtype uint8 or float32"):
        _core.local_variance(np.zeros((3, 3), np.float64))
    with pytest.raises(ValueError, match="contiguous"):
        _core.local_variance(np.zeros((3, 6), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="window"):
        _core.local_variance(np.zeros((3, 3), np.uint8), 2)
