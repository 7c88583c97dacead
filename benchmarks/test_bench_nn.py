"""MTCNN-sized layers: C++ kernels vs numpy and vs single-threaded onnxruntime (one-node ONNX
graphs; those peers are skipped when the `onnx` package, not a dependency, is missing).
Activations are random: the time of these layers does not depend on the values."""

import numpy as np
import pytest

from masksegx import nn
from peers import (
    conv2d_numpy,
    fully_connected_numpy,
    max_pool2d_numpy,
    onnxruntime_node,
    prelu_numpy,
    softmax_numpy,
)

# name: (input shape, weight shape, stride, padding, groups)
CONV_LAYERS = {
    "P-net conv3x3 3->10 240x320": ((1, 3, 240, 320), (10, 3, 3, 3), 1, 0, 1),
    "P-net depthwise3x3 10ch 118x158": ((1, 10, 118, 158), (10, 1, 3, 3), 1, 0, 10),
    "P-net pointwise 10->16 56x76": ((1, 10, 56, 76), (16, 10, 1, 1), 1, 0, 1),
    "O-net conv3x3 3->32 16x48x48": ((16, 3, 48, 48), (32, 3, 3, 3), 1, 0, 1),
    "R-net conv4x4 s2 3->16 64x24x24": ((64, 3, 24, 24), (16, 3, 4, 4), 2, 0, 1),
    "R-net conv2x2 32->64 64x4x4": ((64, 32, 4, 4), (64, 32, 2, 2), 1, 0, 1),
    "O-net depthwise3x3 s2 32ch 16x23x23": ((16, 32, 23, 23), (32, 1, 3, 3), 2, 1, 32),
    "O-net pointwise 64->128 16x10x10": ((16, 64, 10, 10), (128, 64, 1, 1), 1, 0, 1),
}
# name: (input shape, kernel, stride)
POOL_LAYERS = {
    "P-net 2x2 s2 10x238x318": ((1, 10, 238, 318), 2, 2),
    "O-net 3x3 s2 16x32x46x46": ((16, 32, 46, 46), 3, 2),
}


def tensor(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


@pytest.fixture(scope="module", params=list(CONV_LAYERS))
def conv_layer(request):
    x_shape, w_shape, stride, padding, groups = CONV_LAYERS[request.param]
    return request.param, tensor(x_shape), tensor(w_shape, 1), tensor(w_shape[:1], 2), stride, padding, groups


def test_conv2d_cpp(benchmark, conv_layer):
    name, x, w, b, stride, padding, groups = conv_layer
    benchmark.group = f"nn.conv2d {name}"
    out = benchmark(nn.conv2d, x, w, b, stride=stride, padding=padding, groups=groups)
    expected = conv2d_numpy(x, w, b, (stride,) * 2, (padding,) * 2, groups)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_conv2d_numpy(benchmark, conv_layer):
    name, x, w, b, stride, padding, groups = conv_layer
    benchmark.group = f"nn.conv2d {name}"
    benchmark(conv2d_numpy, x, w, b, (stride,) * 2, (padding,) * 2, groups)


def test_conv2d_onnxruntime(benchmark, conv_layer):
    name, x, w, b, stride, padding, groups = conv_layer
    run = onnxruntime_node("Conv", {"x": x}, {"w": w, "b": b}, 4, strides=[stride] * 2,
                           pads=[padding] * 4, group=groups)
    if run is None:
        pytest.skip("onnx is not installed")
    benchmark.group = f"nn.conv2d {name}"
    benchmark(run, x)


@pytest.fixture(scope="module", params=list(POOL_LAYERS))
def pool_layer(request):
    shape, kernel, stride = POOL_LAYERS[request.param]
    return request.param, tensor(shape), kernel, stride


def test_max_pool2d_cpp(benchmark, pool_layer):
    name, x, kernel, stride = pool_layer
    benchmark.group = f"nn.max_pool2d {name}"
    out = benchmark(nn.max_pool2d, x, kernel, stride)
    np.testing.assert_array_equal(out, max_pool2d_numpy(x, (kernel,) * 2, (stride,) * 2))


def test_max_pool2d_numpy(benchmark, pool_layer):
    name, x, kernel, stride = pool_layer
    benchmark.group = f"nn.max_pool2d {name}"
    benchmark(max_pool2d_numpy, x, (kernel,) * 2, (stride,) * 2)


def test_max_pool2d_onnxruntime(benchmark, pool_layer):
    name, x, kernel, stride = pool_layer
    run = onnxruntime_node("MaxPool", {"x": x}, {}, 4, kernel_shape=[kernel] * 2,
                           strides=[stride] * 2, ceil_mode=1)
    if run is None:
        pytest.skip("onnx is not installed")
    benchmark.group = f"nn.max_pool2d {name}"
    out = benchmark(run, x)
    np.testing.assert_array_equal(out, nn.max_pool2d(x, kernel, stride))


# The O-net head: a batch of 16 crops, 1152 features -> 256.
FC_SHAPES = ((16, 1152), (256, 1152))


@pytest.fixture(scope="module")
def fc_layer():
    return tensor(FC_SHAPES[0]), tensor(FC_SHAPES[1], 1), tensor(FC_SHAPES[1][:1], 2)


def test_fully_connected_cpp(benchmark, fc_layer):
    benchmark.group = "nn.fully_connected O-net 16x1152->256"
    out = benchmark(nn.fully_connected, *fc_layer)
    np.testing.assert_allclose(out, fully_connected_numpy(*fc_layer), rtol=1e-4, atol=1e-4)


def test_fully_connected_numpy(benchmark, fc_layer):
    benchmark.group = "nn.fully_connected O-net 16x1152->256"
    benchmark(fully_connected_numpy, *fc_layer)


def test_fully_connected_onnxruntime(benchmark, fc_layer):
    x, w, b = fc_layer
    run = onnxruntime_node("Gemm", {"x": x}, {"w": w, "b": b}, 2, transB=1)
    if run is None:
        pytest.skip("onnx is not installed")
    benchmark.group = "nn.fully_connected O-net 16x1152->256"
    benchmark(run, x)


ACTIVATION_SHAPE = (1, 10, 238, 318)  # P-net's first PReLU at 240x320


@pytest.fixture(scope="module")
def activations():
    return tensor(ACTIVATION_SHAPE), tensor(ACTIVATION_SHAPE[1:2], 1)


def test_prelu_cpp(benchmark, activations):
    benchmark.group = "nn.prelu 10x238x318"
    benchmark(nn.prelu, *activations)


def test_prelu_numpy(benchmark, activations):
    benchmark.group = "nn.prelu 10x238x318"
    benchmark(prelu_numpy, *activations)


def test_prelu_onnxruntime(benchmark, activations):
    x, slope = activations
    run = onnxruntime_node("PRelu", {"x": x}, {"s": slope.reshape(-1, 1, 1)}, 4)
    if run is None:
        pytest.skip("onnx is not installed")
    benchmark.group = "nn.prelu 10x238x318"
    benchmark(run, x)


SOFTMAX_SHAPE = (1, 2, 115, 155)  # P-net's face / not-face map at 240x320


@pytest.fixture(scope="module")
def logits():
    return tensor(SOFTMAX_SHAPE) * 4


def test_softmax_cpp(benchmark, logits):
    benchmark.group = "nn.softmax 2x115x155"
    benchmark(nn.softmax, logits, 1)


def test_softmax_numpy(benchmark, logits):
    benchmark.group = "nn.softmax 2x115x155"
    benchmark(softmax_numpy, logits, 1)


def test_softmax_onnxruntime(benchmark, logits):
    run = onnxruntime_node("Softmax", {"x": logits}, {}, 4, axis=1)
    if run is None:
        pytest.skip("onnx is not installed")
    benchmark.group = "nn.softmax 2x115x155"
    benchmark(run, logits)


# ---- area resampling of crops (the cascade's R/O-net inputs) vs OpenCV per crop ---------------


@pytest.fixture(scope="module")
def crop_boxes():
    """100 square boxes of 12-120 px inside a 640x480 image, as the P-net proposes them."""
    rng = np.random.default_rng(0)
    side = rng.integers(12, 121, 100)
    x0, y0 = rng.integers(0, 640 - side), rng.integers(0, 480 - side)
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1).astype(np.int64)


def test_resize_area_cpp(benchmark, crop_boxes):
    image = tensor((3, 480, 640))
    benchmark.group = "resize_area 100 crops to 24x24"
    benchmark(nn.resize_area, image, crop_boxes, 24)


def test_resize_area_opencv(benchmark, crop_boxes):
    cv2 = pytest.importorskip("cv2")
    image = np.ascontiguousarray(tensor((3, 480, 640)).transpose(1, 2, 0))
    benchmark.group = "resize_area 100 crops to 24x24"

    def crops():
        batch = np.empty((len(crop_boxes), 24, 24, 3), np.float32)
        for k, (x0, y0, x1, y1) in enumerate(crop_boxes):
            batch[k] = cv2.resize(image[y0:y1, x0:x1], (24, 24), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    benchmark(crops)
