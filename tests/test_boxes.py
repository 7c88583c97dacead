"""The two box conventions' IoU and NMS helpers (masksegx.boxes) against numpy references."""

import numpy as np
import pytest

from masksegx.boxes import as_boxes, iou_exclusive, iou_inclusive, nms_exclusive
from masksegx.nms import nms
from reference import nms_ref


def random_boxes(rng, count):
    corners = rng.integers(0, 60, size=(count, 2)).astype(np.float64)
    sides = rng.integers(1, 30, size=(count, 2)).astype(np.float64)
    return np.concatenate([corners, corners + sides], axis=1)


def greedy(boxes, scores, threshold, iou):
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        keep.append(order[0])
        order = order[1:][iou(boxes[order[0]][None], boxes[order[1:]])[0] <= threshold]
    return np.array(keep, np.int64)


def test_iou_of_known_boxes():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou_exclusive(a, b), [[50 / 150, 0.0, 1.0]])
    np.testing.assert_allclose(iou_inclusive(a, b), [[66 / 176, 0.0, 1.0]])
    assert iou_exclusive(np.zeros((0, 4)), b).shape == (0, 3)
    assert iou_exclusive([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0, 0] == 0.0  # empty union


def test_inclusive_is_exclusive_with_one_more_pixel(rng):
    a, b = random_boxes(rng, 20), random_boxes(rng, 30)
    grow = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(iou_inclusive(a, b), iou_exclusive(a + grow, b + grow))


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_of_each_convention_matches_greedy_numpy(rng, threshold):
    boxes = random_boxes(rng, 60)
    scores = rng.integers(0, 10, size=60).astype(np.float32)  # ties keep the lower index first
    np.testing.assert_array_equal(
        nms_exclusive(boxes, scores, threshold), greedy(boxes, scores, threshold, iou_exclusive)
    )
    inclusive = greedy(boxes, scores, threshold, iou_inclusive)
    np.testing.assert_array_equal(nms(boxes, scores, threshold), inclusive)
    np.testing.assert_array_equal(nms(boxes, scores, threshold), nms_ref(boxes, scores, threshold))


def test_empty_and_bad_boxes():
    assert nms_exclusive(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
    with pytest.raises(ValueError, match="shape"):
        as_boxes([[1, 2, 3]])
    with pytest.raises(ValueError, match="NaN"):
        iou_exclusive([[0, 0, np.nan, 1]], [[0, 0, 1, 1]])
