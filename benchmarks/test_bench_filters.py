"""Local variance (5x5 window) of a grey uint8 photo and of its float32 NBRI map."""

import cv2
import pytest

import peers
from masksegx import color, filters

INPUTS = {
    "grey uint8": lambda photo: cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY),
    "nbri float32": color.nbri,
}


def run(benchmark, photo, kind, function):
    values = INPUTS[kind](photo)
    benchmark.group = f"filters.local_variance {kind} {photo.shape[1]}x{photo.shape[0]}"
    benchmark(function, values, 5)


@pytest.mark.parametrize("kind", list(INPUTS))
def test_cpp(benchmark, photo, kind):
    run(benchmark, photo, kind, filters.local_variance)


@pytest.mark.parametrize("kind", list(INPUTS))
def test_numpy(benchmark, photo, kind):
    run(benchmark, photo, kind, peers.local_variance_numpy)


@pytest.mark.parametrize("kind", list(INPUTS))
def test_opencv(benchmark, photo, kind):
    run(benchmark, photo, kind, peers.local_variance_opencv)
