"""One FaceMaskSegmenter shared by 8 threads returns exactly what sequential calls return."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from masksegx import FaceMaskSegmenter
from masksegx.detect import FaceDetector
from masksegx.examples import EXAMPLES

THREADS = 8
FIELDS = ("box", "score", "landmarks", "gender", "gender_prob", "coverage_probs", "coverage",
          "wearing", "mask", "wearing_probs")


def photos():
    """The bundled photos, mirrored and shrunk too: six images with different faces and sizes."""
    images = []
    for example in EXAMPLES:
        image = cv2.imread(example.path)
        images += [image, image[:, ::-1].copy(), cv2.resize(image, None, fx=0.7, fy=0.7)]
    return images


def assert_same_faces(got, expected):
    assert len(got) == len(expected)
    for face, reference in zip(got, expected):
        for field in FIELDS:
            np.testing.assert_array_equal(getattr(face, field), getattr(reference, field), field)


@pytest.mark.parametrize("method", ["fused", "spectral"])
def test_eight_threads_match_sequential_calls(method):
    segmenter = FaceMaskSegmenter(method=method)
    images = photos()
    sequential = [segmenter(image) for image in images]
    assert any(sequential), "the photos show faces"
    # Each image several times, interleaved, so threads overlap on the same and different inputs.
    jobs = list(range(len(images))) * 4
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda i: (i, segmenter(images[i])), jobs))
    for index, faces in results:
        assert_same_faces(faces, sequential[index])


def test_onnxruntime_detector_backend_is_thread_safe_too():
    segmenter = FaceMaskSegmenter(method="learned")
    segmenter.detector = FaceDetector(backend="onnxruntime", onnxruntime_threads=1)
    images = photos()
    sequential = [segmenter(image) for image in images]
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(segmenter, images * 3))
    for index, faces in enumerate(results):
        assert_same_faces(faces, sequential[index % len(images)])


def test_run_in_parallel_keeps_the_order_and_runs_nested_calls_serially():
    from masksegx._models import run_in_parallel

    names = set()

    def inner(k):
        names.add(threading.current_thread().name)
        return k * k

    def outer(k):
        return run_in_parallel(3, inner, list(range(k)))  # inside a worker: no nested waiting

    assert run_in_parallel(3, outer, list(range(6))) == [[j * j for j in range(k)] for k in range(6)]
    assert run_in_parallel(1, inner, [3, 1]) == [9, 1]
    assert any(name.startswith("masksegx") for name in names)


def test_submit_to_pool_runs_on_a_worker_and_inline_inside_one():
    from masksegx._models import run_in_parallel, submit_to_pool

    def where():
        return threading.current_thread().name

    assert submit_to_pool(2, where).result().startswith("masksegx")
    assert submit_to_pool(1, where).result() == threading.current_thread().name
    # From inside a worker of the same (one-worker) pool: run there, not queued behind itself.
    inner = run_in_parallel(2, lambda _: (where(), submit_to_pool(2, where).result()), [0, 1])[1]
    assert inner[0] == inner[1] and inner[0].startswith("masksegx")

    def fails():
        raise ValueError("image: bad")

    for threads in (1, 2):
        with pytest.raises(ValueError, match="image: bad"):
            submit_to_pool(threads, fails).result()


def test_run_in_parallel_leaves_the_items_of_a_busy_pool_to_the_caller():
    from masksegx._models import run_in_parallel, submit_to_pool

    release = threading.Event()
    blocker = submit_to_pool(2, lambda: release.wait(10))  # the one worker of the 2-thread pool
    try:
        names = run_in_parallel(2, lambda _: threading.current_thread().name, list(range(5)))
        assert names == [threading.current_thread().name] * 5
    finally:
        release.set()
    assert blocker.result() is True
    # A free pool takes items too, and an item's error reaches the caller.
    seen = run_in_parallel(2, lambda k: (time.sleep(0.01), threading.current_thread().name)[1],
                           list(range(8)))
    assert any(name.startswith("masksegx") for name in seen)

    def fails_on_three(k):
        if k == 3:
            raise ValueError("item 3")
        return k

    with pytest.raises(ValueError, match="item 3"):
        run_in_parallel(2, fails_on_three, list(range(6)))
