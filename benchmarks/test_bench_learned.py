"""Latency of the learned segmentation path, single thread: MaskNet per face beside the small
U-Net baseline of Table 4 (same interface, same framing), both in onnxruntime.

``net`` rows time the onnxruntime call alone on a prepared input; ``face`` rows a whole
``MaskNet.segment(image, box)`` (crop, resize, net, resize back, paste, threshold) for one face
box in the photo; ``fused`` adds the connectivity analysis.
"""

from pathlib import Path

import numpy as np
import pytest

from masksegx.examples import EXAMPLES
from masksegx.learned import MaskNet, segment_fused

# The U-Net baseline is not shipped: it lives beside the tools that score it.
UNET_BASELINE = Path(__file__).resolve().parents[1] / "tools" / "models" / "unet_baseline.onnx"
MODELS = {"masknet": None, "unet": UNET_BASELINE}


def _net(name):
    path = MODELS[name]
    if path is not None and not path.is_file():
        pytest.skip(f"{path.name} not shipped")
    return MaskNet(path, threads=1)


def _face_box(photo):
    """The blue example's annotated face box, scaled to the benchmark photo."""
    x0, y0, x1, y1 = EXAMPLES[0].face_box
    sx, sy = photo.shape[1] / 600.0, photo.shape[0] / 399.0
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


@pytest.mark.parametrize("name", list(MODELS))
def test_learned_net_only(benchmark, name):
    net = _net(name)
    s = net.input_size
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, s, s)).astype(np.float32)
    benchmark.group = f"learned net {s}x{s}"
    benchmark(net._net.run, x)


@pytest.mark.parametrize("name", list(MODELS))
def test_learned_per_face(benchmark, photo, name):
    net = _net(name)
    benchmark.group = f"learned per face {photo.shape[1]}x{photo.shape[0]}"
    benchmark(net.segment, photo, _face_box(photo))


def test_fused_per_face(benchmark, photo):
    net = _net("masknet")
    benchmark.group = f"learned per face {photo.shape[1]}x{photo.shape[0]}"
    benchmark(segment_fused, photo, _face_box(photo), model=net)
