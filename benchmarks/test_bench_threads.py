"""The kernels release the GIL: the spectral pipeline over a batch on 1 and 2 threads."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from masksegx import segment_spectral

BATCH = 8


@pytest.mark.parametrize("threads", [1, 2])
def test_pipeline_threads(benchmark, photo, threads):
    benchmark.group = f"pipeline batch of {BATCH}, threads {photo.shape[1]}x{photo.shape[0]}"
    batch = [photo] * BATCH
    with ThreadPoolExecutor(threads) as pool:
        benchmark(lambda: list(pool.map(segment_spectral, batch)))
