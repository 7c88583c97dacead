"""Latency of the whole spectral pipeline and of its Table 4 peers on one face crop."""

import pytest

from masksegx import segment_spectral
from masksegx.eval.baselines import SEGMENTATION_METHODS


def test_pipeline_spectral(benchmark, photo):
    benchmark.group = f"pipeline {photo.shape[1]}x{photo.shape[0]}"
    benchmark(segment_spectral, photo)


@pytest.mark.parametrize("method", ["threshold", "level_set", "edge"])
def test_pipeline_baseline(benchmark, photo, method):
    benchmark.group = f"pipeline {photo.shape[1]}x{photo.shape[0]}"
    benchmark(SEGMENTATION_METHODS[method], photo, None)
