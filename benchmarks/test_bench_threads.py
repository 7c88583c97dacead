"""The heavy work runs without the GIL: a batch of 8 images on 1 and 2 threads.

One instance serves all threads (as ``masksegx segment --threads`` does). The ratio of the
1-thread to the 2-thread time is the speed-up; it approaches 2 only as far as the GIL-free
share of the work (C++ kernels, onnxruntime runs) and two free cores allow.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

from masksegx import FaceMaskSegmenter, segment_spectral
from masksegx.attributes import AttributePredictor
from masksegx.detect import FaceDetector

BATCH = 8
THREADS = [1, 2]


def run_batch(benchmark, group: str, photo, threads: int, work) -> None:
    benchmark.group = f"{group} batch of {BATCH}, {photo.shape[1]}x{photo.shape[0]}"
    batch = [photo] * BATCH
    with ThreadPoolExecutor(threads) as pool:
        benchmark(lambda: list(pool.map(work, batch)))


@pytest.mark.parametrize("threads", THREADS)
def test_pipeline_threads(benchmark, photo, threads):
    run_batch(benchmark, "spectral pipeline", photo, threads, segment_spectral)


@pytest.mark.parametrize("threads", THREADS)
def test_segmenter_threads(benchmark, photo, threads):
    segmenter = FaceMaskSegmenter(threads=1)
    run_batch(benchmark, "FaceMaskSegmenter fused", photo, threads, segmenter)


@pytest.mark.parametrize("backend", ["native", "onnxruntime"])
@pytest.mark.parametrize("threads", THREADS)
def test_detector_threads(benchmark, photo, threads, backend):
    detector = FaceDetector(backend=backend, onnxruntime_threads=1)
    run_batch(benchmark, f"detector {backend}", photo, threads, detector)


@pytest.mark.parametrize("threads", THREADS)
def test_attributes_threads(benchmark, photo, threads):
    """onnxruntime's session.run releases the GIL too."""
    landmarks = FaceDetector()(photo).landmarks[:1]
    predictor = AttributePredictor(threads=1)
    run_batch(benchmark, "attributes (onnxruntime)", photo, threads,
              lambda image: predictor(image, landmarks))
