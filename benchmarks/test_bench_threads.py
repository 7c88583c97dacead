"""The heavy work runs without the GIL: a batch of 8 images on 1 and 2 threads.

One instance serves all threads (as ``masksegx segment --threads`` does). The ratio of the
1-thread to the 2-thread time is the speed-up; it approaches 2 only as far as the GIL-free
share of the work (C++ kernels, onnxruntime runs) and two free cores allow. ``extra_info``
records ``cores_used``, the process CPU time over the wall time: above 1 means the threads
really ran at once, which a held GIL would forbid (a figure that a busy machine lowers, but
cannot raise).
"""

import time
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
    totals = {"cpu": 0.0, "wall": 0.0}

    def timed_batch():
        cpu, wall = time.process_time(), time.perf_counter()
        list(pool.map(work, batch))
        totals["cpu"] += time.process_time() - cpu
        totals["wall"] += time.perf_counter() - wall

    with ThreadPoolExecutor(threads) as pool:
        benchmark(timed_batch)
    benchmark.extra_info["cores_used"] = round(totals["cpu"] / totals["wall"], 2)


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
