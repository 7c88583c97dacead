"""NMS on P-net-like candidate sets: clustered, heavily overlapping boxes around face spots."""

import numpy as np
import pytest

from masksegx.nms import nms
from peers import nms_numpy

COUNTS = [300, 2000]


@pytest.fixture(scope="module", params=COUNTS)
def candidates(request):
    rng = np.random.default_rng(0)
    n = request.param
    centres = rng.uniform(0, 640, (40, 2))[rng.integers(0, 40, n)] + rng.normal(0, 8, (n, 2))
    side = rng.uniform(12, 60, (n, 1))
    boxes = np.hstack([centres - side / 2, centres + side / 2]).astype(np.float32)
    return boxes, rng.uniform(0.6, 1, n).astype(np.float32)


@pytest.mark.parametrize("mode", ["union", "min"])
def test_cpp(benchmark, candidates, mode):
    boxes, scores = candidates
    benchmark.group = f"nms.nms {mode} {len(boxes)} boxes"
    kept = benchmark(nms, boxes, scores, 0.5, mode=mode)
    np.testing.assert_array_equal(kept, nms_numpy(boxes, scores, 0.5, mode))


@pytest.mark.parametrize("mode", ["union", "min"])
def test_numpy(benchmark, candidates, mode):
    boxes, scores = candidates
    benchmark.group = f"nms.nms {mode} {len(boxes)} boxes"
    benchmark(nms_numpy, boxes, scores, 0.5, mode)
