"""COCO run-length encoding: exact pycocotools strings and round trips."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from masksegx import rle


def _small_mask() -> np.ndarray:
    mask = np.zeros((6, 5), bool)
    mask[1:4, 1:3] = True
    mask[5, 4] = True
    return mask


def _holed_mask() -> np.ndarray:
    mask = np.zeros((300, 200), bool)
    mask[50:250, 20:180] = True
    mask[100:120, 60:70] = False
    return mask


# Strings written by pycocotools 2.0.11 (``mask.encode``) for the same masks.
PYCOCOTOOLS = [
    (_small_mask(), "7330:N"),
    (np.ones((3, 4), bool) & (np.arange(12).reshape(3, 4) != 0), "1;"),
    (np.ones((3, 4), bool), "0<"),
    (
        _holed_mask(),
        "Rm5X6T3" + "0" * 78 + "ZK`M`2`2" + "`M`M`2`2" * 9 + "V2" + "0" * 218 + "ni5",
    ),
]


@pytest.mark.parametrize("mask, counts", PYCOCOTOOLS)
def test_encode_matches_pycocotools(mask, counts):
    assert rle.encode(mask) == {"size": list(mask.shape), "counts": counts}
    np.testing.assert_array_equal(rle.decode({"size": list(mask.shape), "counts": counts}), mask)


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40)))
def test_round_trip(mask):
    np.testing.assert_array_equal(rle.decode(rle.encode(mask)), mask)


@given(st.integers(1, 30), st.integers(1, 30))
def test_round_trip_long_runs(height, width):
    for mask in (np.zeros((height, width), bool), np.ones((height, width), bool)):
        np.testing.assert_array_equal(rle.decode(rle.encode(mask)), mask)


def test_integer_masks_are_accepted():
    mask = _small_mask()
    assert rle.encode(mask.astype(np.uint8)) == rle.encode(mask)


@pytest.mark.parametrize("bad", [np.zeros(5, bool), np.zeros((2, 2, 2), bool), [[0, 1]]])
def test_encode_rejects_non_2d(bad):
    with pytest.raises(ValueError, match="mask"):
        rle.encode(bad)


@pytest.mark.parametrize(
    "bad",
    [
        {"size": [2, 2]},
        {"counts": "0<"},
        {"size": [3, 4], "counts": b"0<"},
        {"size": [3, 5], "counts": "0<"},  # counts cover 12 pixels, size says 15
        {"size": [3, 4], "counts": "0\x7f"},
        {"size": [3, 4], "counts": "0l"},  # ends inside a number
        "0<",
    ],
)
def test_decode_rejects_malformed(bad):
    with pytest.raises(ValueError, match="rle"):
        rle.decode(bad)
