"""End-to-end latency of FaceMaskSegmenter (detect + attributes + segment), single-threaded.

The issue-5 target: under 20 ms for a 640x480 photo with one face. Each stage is also timed on
its own, on the same photo, so the budget can be read off one run.
"""

import pytest

from masksegx.pipeline import METHODS, FaceMaskSegmenter

_SEGMENTERS = {}


def _segmenter(method: str) -> FaceMaskSegmenter:
    # onnxruntime sessions take a while to build: one per method for the whole run.
    if method not in _SEGMENTERS:
        _SEGMENTERS[method] = FaceMaskSegmenter(method=method, threads=1)
    return _SEGMENTERS[method]


@pytest.mark.parametrize("method", METHODS)
def test_segmenter_end_to_end(benchmark, photo, method):
    benchmark.group = f"FaceMaskSegmenter {photo.shape[1]}x{photo.shape[0]} single thread"
    seg = _segmenter(method)
    faces = seg(photo)
    if not faces and photo.shape[:2] == (250, 250):
        # Known miss, tracked by the detector issue ("The detector finds every face in real
        # photos"): the bundled close-up shrunk to 250x250 yields no face. Timing a call that
        # found nothing would report a pipeline figure that is not one.
        pytest.xfail("the detector finds no face in the bundled photo at 250x250")
    assert len(faces) >= 1
    benchmark(seg, photo)


def test_stage_detect(benchmark, photo):
    benchmark.group = f"FaceMaskSegmenter {photo.shape[1]}x{photo.shape[0]} single thread"
    benchmark(_segmenter("fused").detector, photo)


def test_stage_attributes(benchmark, photo):
    benchmark.group = f"FaceMaskSegmenter {photo.shape[1]}x{photo.shape[0]} single thread"
    seg = _segmenter("fused")
    landmarks = seg.detector(photo).landmarks[:1]
    benchmark(seg.attributes, photo, landmarks)
