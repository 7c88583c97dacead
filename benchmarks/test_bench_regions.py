import numpy as np
import pytest

from masksegx import regions
from peers import analyze_opencv, fill_holes_opencv, label_opencv, local_variance, otsu_mask


@pytest.fixture(scope="module")
def scene(photo):
    """(mask, variance): Otsu mask of the grey photo and its 5x5 local variance."""
    return otsu_mask(photo), local_variance(photo)


def group(name, mask):
    return f"regions.{name} {mask.shape[1]}x{mask.shape[0]}"


def test_analyze_cpp(benchmark, scene):
    mask, variance = scene
    benchmark.group = group("analyze", mask)
    result = benchmark(regions.analyze, mask, variance)
    reference = analyze_opencv(mask, variance)
    assert result.count == len(reference[1])
    np.testing.assert_array_equal(np.sort(result.area), np.sort(reference[1]))


def test_analyze_opencv(benchmark, scene):
    mask, variance = scene
    benchmark.group = group("analyze", mask)
    benchmark(analyze_opencv, mask, variance)


def test_label_cpp(benchmark, scene):
    mask, _ = scene
    benchmark.group = group("label", mask)
    benchmark(regions.label, mask)


def test_label_opencv(benchmark, scene):
    mask, _ = scene
    benchmark.group = group("label", mask)
    benchmark(label_opencv, mask)


def test_fill_holes_cpp(benchmark, scene):
    mask, _ = scene
    benchmark.group = group("fill_holes", mask)
    filled = benchmark(regions.fill_holes, mask)
    np.testing.assert_array_equal(filled, fill_holes_opencv(mask))


def test_fill_holes_opencv(benchmark, scene):
    mask, _ = scene
    benchmark.group = group("fill_holes", mask)
    benchmark(fill_holes_opencv, mask)
