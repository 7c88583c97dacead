import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masksegx import _core
from masksegx.nms import nms
from reference import nms_ref


def random_boxes(rng, n, span=60, max_side=30, integer_scores=False):
    corner = rng.uniform(0, span, (n, 2))
    side = rng.uniform(0, max_side, (n, 2))
    boxes = np.hstack([corner, corner + side]).astype(np.float32)
    scores = (rng.integers(0, 4, n) if integer_scores else rng.uniform(0, 1, n)).astype(np.float32)
    return boxes, scores


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 60),
    st.floats(0.0, 1.0),
    st.sampled_from(["union", "min"]),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_nms_matches_reference(n, threshold, mode, integer_scores, seed):
    boxes, scores = random_boxes(np.random.default_rng(seed), n, integer_scores=integer_scores)
    got = nms(boxes, scores, threshold, mode=mode)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, nms_ref(boxes, scores, threshold, mode))


def test_known_example_uses_plus_one_areas():
    boxes = np.array([[0, 0, 9, 9], [5, 0, 14, 9], [0, 0, 4, 4], [30, 30, 40, 40]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    # boxes 0 and 1: 10x10 each, intersection 5x10 = 50, IoU 50 / 150 = 1/3
    np.testing.assert_array_equal(nms(boxes, scores, 0.34), [3, 0, 1, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.33), [3, 0, 2])
    # box 2 lies inside box 0: IoU 0.25, but intersection over the smaller area is 1
    # and boxes 0 and 1 overlap by 50 / min(100, 100) = 0.5, which is not greater than 0.5
    np.testing.assert_array_equal(nms(boxes, scores, 0.5, mode="min"), [3, 0, 1])
    np.testing.assert_array_equal(nms(boxes, scores, 0.49, mode="min"), [3, 0])


def test_ties_keep_the_lower_index_first():
    boxes = np.array([[0, 0, 9, 9], [0, 0, 9, 9], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.5, 0.5, 0.5], np.float32)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [0, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 1.0), [0, 1, 2])  # overlap 1 is not > 1


def test_empty_and_single_inputs():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).shape == (0,)
    np.testing.assert_array_equal(nms(np.array([[1, 2, 3, 4]]), np.array([0.1]), 0.5), [0])


@pytest.mark.parametrize(
    "boxes, scores, threshold, mode, exc, words",
    [
        (np.zeros((3, 5)), np.zeros(3), 0.5, "union", ValueError, "boxes"),
        (np.zeros((3, 4)), np.zeros(2), 0.5, "union", ValueError, "scores"),
        (np.zeros((3, 4)), np.zeros(3), 0.5, "max", ValueError, "mode"),
        (np.zeros((3, 4)), np.zeros(3), float("nan"), "union", ValueError, "iou_threshold"),
        (np.zeros((3, 4)), np.zeros(3), "0.5", "union", TypeError, "iou_threshold"),
        (np.full((3, 4), np.nan), np.zeros(3), 0.5, "union", ValueError, "NaN"),
        (np.zeros((0, 4)), np.zeros(1), 0.5, "union", ValueError, "scores"),
        ([[0, 0, 1, 1]], np.zeros(1), 0.5, "union", TypeError, "boxes"),
    ],
)
def test_bad_inputs_raise(boxes, scores, threshold, mode, exc, words):
    with pytest.raises(exc) as info:
        nms(boxes, scores, threshold, mode=mode)
    assert words in str(info.value)


def test_core_checks_dtype_and_length():
    boxes = np.zeros((2, 4), np.float32)
    with pytest.raises(TypeError, match="scores: expected dtype float32"):
        _core.nms(boxes, np.zeros(2), 0.5)
    with pytest.raises(ValueError, match="scores"):
        _core.nms(boxes, np.zeros(3, np.float32), 0.5)
