import pytest

from masksegx import color
from peers import spectral_maps_numpy, spectral_maps_opencv


@pytest.mark.benchmark(group="color.spectral_maps")
def test_cpp(benchmark, photo):
    benchmark.group = f"color.spectral_maps {photo.shape[1]}x{photo.shape[0]}"
    benchmark(color.spectral_maps, photo)


@pytest.mark.benchmark(group="color.spectral_maps")
def test_numpy(benchmark, photo):
    benchmark.group = f"color.spectral_maps {photo.shape[1]}x{photo.shape[0]}"
    benchmark(spectral_maps_numpy, photo)


@pytest.mark.benchmark(group="color.spectral_maps")
def test_opencv(benchmark, photo):
    benchmark.group = f"color.spectral_maps {photo.shape[1]}x{photo.shape[0]}"
    benchmark(spectral_maps_opencv, photo)
