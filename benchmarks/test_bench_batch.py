"""``masksegx segment`` on a folder of 64 photos: one process, 2 threads, 2 worker processes.

Wall time of the whole batch, reading and writing included; the worker runs include starting
the processes and loading their models (about a second each, once per run).
"""

import functools
import shutil

import pytest

from masksegx import FaceMaskSegmenter
from masksegx.batch import expand_inputs, run_batch
from masksegx.examples import EXAMPLES

IMAGES = 64
SETTINGS = {"one process": {}, "2 threads": {"threads": 2}, "2 workers": {"workers": 2}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for index in range(IMAGES):
        shutil.copy(EXAMPLES[index % len(EXAMPLES)].path, folder / f"photo{index:03d}.jpg")
    return folder


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_segment_folder(benchmark, folder, tmp_path, setting):
    benchmark.group = f"segment a folder of {IMAGES} photos"
    sources, _ = expand_inputs([str(folder)])
    make_segmenter = functools.partial(FaceMaskSegmenter, method="fused")

    def batch():
        report = run_batch(sources, make_segmenter, str(tmp_path), **SETTINGS[setting])
        assert report.written == IMAGES

    benchmark.pedantic(batch, rounds=3, iterations=1)
