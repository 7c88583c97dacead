"""Region compensation (eq. 18-21) with the region = lower half of the photo."""

import numpy as np
import pytest

import peers
from masksegx import compensate


def lower_half(photo):
    region = np.zeros(photo.shape[:2], bool)
    region[photo.shape[0] // 2 :] = True
    return region


def run(benchmark, photo, name, function, *args):
    benchmark.group = f"compensate.{name} {photo.shape[1]}x{photo.shape[0]}"
    benchmark(function, photo, lower_half(photo), *args)


KERNELS = {
    "blue_suppression": (
        lambda image, region: compensate.blue_suppression(image, region, 0.8),
        peers.blue_suppression_numpy,
        peers.blue_suppression_opencv,
    ),
    "minkowski_illuminant t=6": (
        lambda image, region: compensate.minkowski_illuminant(image, region, 6.0),
        lambda image, region: peers.minkowski_illuminant_numpy(image, region, 6.0),
        lambda image, region: peers.minkowski_illuminant_opencv(image, region, 6.0),
    ),
    "minkowski_illuminant t=1": (
        lambda image, region: compensate.minkowski_illuminant(image, region, 1.0),
        lambda image, region: peers.minkowski_illuminant_numpy(image, region, 1.0),
        lambda image, region: peers.minkowski_illuminant_opencv(image, region, 1.0),
    ),
    "gray_world_minkowski": (
        compensate.gray_world_minkowski,
        peers.gray_world_minkowski_numpy,
        peers.gray_world_minkowski_opencv,
    ),
    "compensate_region": (
        compensate.compensate_region,
        peers.compensate_region_numpy,
        peers.compensate_region_opencv,
    ),
}


@pytest.mark.parametrize("name", list(KERNELS))
def test_cpp(benchmark, photo, name):
    run(benchmark, photo, name, KERNELS[name][0])


@pytest.mark.parametrize("name", list(KERNELS))
def test_numpy(benchmark, photo, name):
    run(benchmark, photo, name, KERNELS[name][1])


@pytest.mark.parametrize("name", list(KERNELS))
def test_opencv(benchmark, photo, name):
    run(benchmark, photo, name, KERNELS[name][2])
