import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masksegx import _core, nn
from reference import (
    conv2d_ref,
    fully_connected_ref,
    max_pool2d_ref,
    pool_output_side,
    prelu_ref,
    softmax_ref,
)


def random_tensor(rng, shape):
    return rng.uniform(-1, 1, shape).astype(np.float32)


def assert_conv_matches(x, weight, bias, stride, padding, groups):
    got = nn.conv2d(x, weight, bias, stride=stride, padding=padding, groups=groups)
    ref = conv2d_ref(x, weight, bias, stride, padding, groups)
    # float32 sums: error bounded by the magnitude of the summed terms, not of the result
    scale = conv2d_ref(np.abs(x), np.abs(weight), None, stride, padding, groups)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.all(np.abs(got - ref) <= 1e-5 * scale + 1e-6)


@st.composite
def conv_cases(draw, depthwise=False, pointwise=False):
    groups = draw(st.integers(1, 3))
    if depthwise:
        cg, mg, kh, kw = 1, 1, 3, 3
    else:
        cg, mg = draw(st.integers(1, 4)), draw(st.integers(1, 5))
        kh, kw = (1, 1) if pointwise else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    if pointwise:
        stride, padding = (1, 1), (0, 0)
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), 20))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), 41))  # > 2 SIMD strips plus a tail
    n = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    x = random_tensor(rng, (n, cg * groups, h, w))
    weight = random_tensor(rng, (mg * groups, cg, kh, kw))
    bias = random_tensor(rng, (mg * groups,)) if draw(st.booleans()) else None
    return x, weight, bias, stride, padding, groups


@settings(max_examples=80, deadline=None)
@given(conv_cases())
def test_conv2d_generic_matches_reference(case):
    assert_conv_matches(*case)


@settings(max_examples=60, deadline=None)
@given(conv_cases(depthwise=True))
def test_conv2d_depthwise_3x3_matches_reference(case):
    assert_conv_matches(*case)


@settings(max_examples=60, deadline=None)
@given(conv_cases(pointwise=True))
def test_conv2d_pointwise_matches_reference(case):
    assert_conv_matches(*case)


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, groups",
    [
        ((1, 3, 24, 31), (10, 3, 3, 3), 1, 0, 1),  # P-net first layer
        ((2, 3, 24, 24), (28, 3, 3, 3), 2, 1, 1),  # strided first layer
        ((1, 16, 19, 23), (16, 1, 3, 3), 1, 0, 16),  # depthwise
        ((1, 16, 19, 23), (16, 1, 3, 3), 2, 1, 16),  # depthwise, stride 2, padded
        ((1, 8, 1, 1), (8, 1, 3, 3), 1, 1, 8),  # depthwise on a 1x1 map
        ((3, 32, 7, 9), (64, 32, 1, 1), 1, 0, 1),  # pointwise
        ((1, 5, 1, 1), (7, 5, 1, 1), 1, 0, 1),  # pointwise on a 1x1 map
        ((2, 64, 3, 3), (128, 64, 3, 3), 1, 0, 1),  # conv to a 1x1 map (R/O-net end)
        ((5, 3, 24, 24), (16, 3, 4, 4), 2, 0, 1),  # our R-net stem: 11x11 planes, batched
        ((2, 3, 48, 48), (32, 3, 4, 4), 2, 0, 1),  # our O-net stem: rows of 23 at stride 2
        ((6, 32, 4, 4), (64, 32, 2, 2), 1, 0, 1),  # 2x2 conv on 4x4 planes, batched
    ],
)
def test_conv2d_named_layers(rng, x_shape, w_shape, stride, padding, groups):
    x, weight = random_tensor(rng, x_shape), random_tensor(rng, w_shape)
    bias = random_tensor(rng, (w_shape[0],))
    assert_conv_matches(x, weight, bias, (stride, stride), (padding, padding), groups)


def test_conv2d_identity_kernel_copies_the_input(rng):
    x = random_tensor(rng, (1, 2, 5, 6))
    weight = np.zeros((2, 1, 3, 3), np.float32)
    weight[:, 0, 1, 1] = 1
    np.testing.assert_array_equal(nn.conv2d(x, weight, padding=1, groups=2), x)


@pytest.fixture
def scalar_and_simd():
    """Runs a function on the SIMD path and the scalar path; restores SIMD afterwards."""
    level = nn.simd_level()
    if level == "scalar":
        pytest.skip("no SIMD path on this CPU")

    def run(fn, *args, **kwargs):
        simd = fn(*args, **kwargs)
        nn.set_simd(False)
        try:
            assert nn.simd_level() == "scalar"
            scalar = fn(*args, **kwargs)
        finally:
            nn.set_simd(True)
        assert nn.simd_level() == level
        return simd, scalar

    return run


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, groups",
    [
        ((1, 3, 37, 45), (10, 3, 3, 3), 1, 0, 1),
        ((2, 10, 33, 41), (10, 1, 3, 3), 1, 0, 10),
        ((2, 10, 33, 41), (10, 1, 3, 3), 2, 1, 10),
        ((1, 10, 29, 37), (16, 10, 1, 1), 1, 0, 1),
        ((4, 64, 5, 5), (128, 64, 3, 3), 1, 0, 1),
        ((5, 3, 24, 24), (16, 3, 4, 4), 2, 0, 1),
        ((2, 3, 48, 48), (32, 3, 4, 4), 2, 0, 1),
        ((6, 32, 4, 4), (64, 32, 2, 2), 1, 0, 1),
    ],
)
def test_simd_matches_scalar_conv(rng, scalar_and_simd, x_shape, w_shape, stride, padding, groups):
    x, weight = random_tensor(rng, x_shape), random_tensor(rng, w_shape)
    bias = random_tensor(rng, (w_shape[0],))
    simd, scalar = scalar_and_simd(
        nn.conv2d, x, weight, bias, stride=stride, padding=padding, groups=groups
    )
    scale = conv2d_ref(np.abs(x), np.abs(weight), None, (stride,) * 2, (padding,) * 2, groups)
    assert np.all(np.abs(simd - scalar) <= 1e-5 * scale)


def test_simd_matches_scalar_fully_connected(rng, scalar_and_simd):
    x, weight, bias = random_tensor(rng, (5, 1153)), random_tensor(rng, (37, 1153)), None
    simd, scalar = scalar_and_simd(nn.fully_connected, x, weight, bias)
    scale = np.abs(x) @ np.abs(weight).T
    assert np.all(np.abs(simd - scalar) <= 1e-5 * scale)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_max_pool2d_matches_reference(data):
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    sh, sw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    h, w = data.draw(st.integers(kh, 17)), data.draw(st.integers(kw, 17))
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    x = random_tensor(np.random.default_rng(data.draw(st.integers(0, 2**31))), (n, c, h, w))
    got = nn.max_pool2d(x, (kh, kw), (sh, sw))
    np.testing.assert_array_equal(got, max_pool2d_ref(x, (kh, kw), (sh, sw)))


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [
        (10, 2, 2, 5),  # P-net
        (22, 3, 2, 11),  # R-net: ceil mode adds the clipped last window
        (46, 3, 2, 23),  # O-net
        (9, 2, 2, 5),  # last window holds one column
        (5, 1, 3, 2),  # ceil would start a window at 6 >= 5: dropped
        (3, 3, 2, 1),
    ],
)
def test_pool_output_sides(size, kernel, stride, expected):
    assert pool_output_side(size, kernel, stride) == expected
    x = np.zeros((1, 1, size, size), np.float32)
    assert nn.max_pool2d(x, kernel, stride).shape == (1, 1, expected, expected)


def test_max_pool2d_clipped_window_sees_only_the_input():
    x = -np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5)
    got = nn.max_pool2d(x, 2, 2)
    assert got.shape == (1, 1, 3, 3)
    assert got[0, 0, 2, 2] == -25  # the 1x1 corner window, not a padded zero


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_prelu_relu_softmax_match_reference(data):
    ndim = data.draw(st.integers(2, 4))
    shape = tuple(data.draw(st.integers(1, 6)) for _ in range(ndim))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.uniform(-5, 5, shape).astype(np.float32)
    slope = rng.uniform(-1, 1, shape[1]).astype(np.float32)
    np.testing.assert_allclose(nn.prelu(x, slope), prelu_ref(x, slope), rtol=1e-6)
    np.testing.assert_array_equal(nn.relu(x), np.maximum(x, 0))
    axis = data.draw(st.integers(-ndim, ndim - 1))
    np.testing.assert_allclose(nn.softmax(x, axis), softmax_ref(x, axis), rtol=1e-5, atol=1e-7)


def test_prelu_and_relu_leave_their_input_alone(rng):
    x = random_tensor(rng, (2, 3, 4, 5))
    before = x.copy()
    nn.prelu(x, np.full(3, 0.25, np.float32))
    nn.relu(x)
    np.testing.assert_array_equal(x, before)


def test_core_prelu_works_in_place(rng):
    x = random_tensor(rng, (2, 3))
    expected = prelu_ref(x, np.full(3, 0.5, np.float32))
    out = _core.prelu(x, np.full(3, 0.5, np.float32), inplace=True)
    assert out is x or np.shares_memory(out, x)
    np.testing.assert_allclose(x, expected, rtol=1e-6)


def test_softmax_is_stable_for_large_logits():
    x = np.array([[1000.0, 0.0], [-1000.0, -1000.0]], np.float32)
    np.testing.assert_allclose(nn.softmax(x), [[1, 0], [0.5, 0.5]], atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 17), st.integers(1, 70), st.integers(1, 9), st.booleans(), st.integers(0, 99))
def test_fully_connected_matches_reference(n, k, m, with_bias, seed):
    rng = np.random.default_rng(seed)
    x, weight = random_tensor(rng, (n, k)), random_tensor(rng, (m, k))
    bias = random_tensor(rng, (m,)) if with_bias else None
    got = nn.fully_connected(x, weight, bias)
    scale = np.abs(x) @ np.abs(weight).T
    assert np.all(np.abs(got - fully_connected_ref(x, weight, bias)) <= 1e-5 * scale + 1e-6)


def test_non_contiguous_and_integer_inputs_are_accepted(rng):
    x = random_tensor(rng, (1, 4, 9, 10))
    weight = random_tensor(rng, (2, 4, 3, 3))
    view = x[:, :, ::2, ::-1]
    np.testing.assert_array_equal(
        nn.conv2d(view, weight), nn.conv2d(np.ascontiguousarray(view), weight)
    )
    ints = np.arange(12).reshape(2, 6)
    np.testing.assert_array_equal(nn.relu(ints), ints.astype(np.float32))


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: nn.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((2, 3, 3, 3))), ValueError, "weight"),
        (lambda: nn.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((2, 2, 3, 3)), groups=3), ValueError, "groups"),
        (lambda: nn.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((3, 2, 3, 3)), groups=2), ValueError, "groups"),
        (lambda: nn.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3))), ValueError, "larger"),
        (lambda: nn.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), np.zeros(2)), ValueError, "bias"),
        (lambda: nn.conv2d(np.zeros((1, 5, 5)), np.zeros((1, 1, 3, 3))), ValueError, "x"),
        (lambda: nn.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=0), ValueError, "stride"),
        (
            lambda: nn.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), padding=-1),
            ValueError,
            "padding",
        ),
        (lambda: nn.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=1.5), TypeError, "stride"),
        (lambda: nn.conv2d(np.full((1, 1, 5, 5), np.nan), np.zeros((1, 1, 3, 3))), ValueError, "NaN"),
        (lambda: nn.conv2d(np.zeros((1, 1, 5, 5), complex), np.zeros((1, 1, 3, 3))), TypeError, "x"),
        (lambda: nn.conv2d([[[[1.0]]]], np.zeros((1, 1, 1, 1))), TypeError, "numpy.ndarray"),
        (lambda: nn.max_pool2d(np.zeros((1, 1, 2, 5)), 3, 2), ValueError, "smaller"),
        (lambda: nn.max_pool2d(np.zeros((1, 1, 5, 5)), 0), ValueError, "kernel"),
        (lambda: nn.prelu(np.zeros((2, 3)), np.zeros(4)), ValueError, "slope"),
        (lambda: nn.prelu(np.zeros(3), np.zeros(3)), ValueError, "x"),
        (lambda: nn.fully_connected(np.zeros((2, 3)), np.zeros((4, 5))), ValueError, "weight"),
        (lambda: nn.fully_connected(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(3)), ValueError, "bias"),
        (lambda: nn.softmax(np.zeros((2, 3)), axis=2), ValueError, "axis"),
        (lambda: nn.relu(np.zeros((0, 3))), ValueError, "empty"),
    ],
)
def test_bad_inputs_raise(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def test_core_rejects_what_the_wrapper_would_convert():
    weight = np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        _core.conv2d(np.zeros((1, 1, 5, 5)), weight)
    with pytest.raises(ValueError, match="contiguous"):
        _core.conv2d(np.zeros((1, 1, 5, 10), np.float32)[..., ::2], weight)
    with pytest.raises(TypeError, match="weight"):
        _core.fully_connected(np.zeros((1, 2), np.float32), np.zeros((1, 2)))


def test_environment_variable_forces_scalar():
    import os
    import subprocess
    import sys

    env = dict(os.environ, MASKSEGX_FORCE_SCALAR="1")
    level = subprocess.run(
        [sys.executable, "-c", "from masksegx import nn; print(nn.simd_level())"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert level == "scalar"


# ---- fused PReLU, batched small planes, output buffers, area resampling -----------------------


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, groups",
    [
        ((1, 3, 37, 45), (16, 3, 4, 4), 2, 0, 1),  # P-net stem (im2col, stride 2)
        ((2, 10, 33, 41), (10, 1, 3, 3), 1, 0, 10),  # depthwise
        ((1, 10, 29, 37), (16, 10, 1, 1), 1, 0, 1),  # pointwise
        ((5, 48, 4, 4), (64, 48, 2, 2), 1, 0, 1),  # R-net 2x2 conv: batched small planes
        ((7, 32, 5, 5), (64, 32, 1, 1), 1, 0, 1),  # batched pointwise
        ((3, 6, 6, 7), (9, 6, 3, 3), 2, 1, 1),  # batched, strided and padded
    ],
)
def test_fused_prelu_equals_conv_then_prelu(rng, scalar_and_simd, x_shape, w_shape, stride,
                                            padding, groups):
    x, weight = random_tensor(rng, x_shape), random_tensor(rng, w_shape)
    bias, slope = random_tensor(rng, (w_shape[0],)), random_tensor(rng, (w_shape[0],))
    kwargs = dict(stride=stride, padding=padding, groups=groups)
    simd, scalar = scalar_and_simd(nn.conv2d, x, weight, bias, slope=slope, **kwargs)
    expected = prelu_ref(conv2d_ref(x, weight, bias, (stride,) * 2, (padding,) * 2, groups), slope)
    for got in (simd, scalar):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [2, 9, 300])  # 300 samples: several chunks of samples
def test_batched_small_planes_match_reference(rng, n):
    x, weight = random_tensor(rng, (n, 12, 4, 4)), random_tensor(rng, (20, 12, 2, 2))
    bias = random_tensor(rng, (20,))
    assert_conv_matches(x, weight, bias, (1, 1), (0, 0), 1)


def test_core_kernels_write_into_out(rng):
    x, weight = random_tensor(rng, (2, 3, 9, 10)), random_tensor(rng, (4, 3, 3, 3))
    out = np.full((2, 4, 7, 8), np.nan, np.float32)
    got = _core.conv2d(x, weight, None, (1, 1), (0, 0), 1, None, out)
    assert got is out or np.shares_memory(got, out)
    np.testing.assert_allclose(out, conv2d_ref(x, weight, None, (1, 1), (0, 0), 1), atol=1e-5)
    pooled = np.empty((2, 3, 5, 5), np.float32)
    _core.max_pool2d(x, (2, 2), (2, 2), pooled)
    np.testing.assert_array_equal(pooled, max_pool2d_ref(x, (2, 2), (2, 2)))
    with pytest.raises(ValueError, match="out"):
        _core.conv2d(x, weight, None, (1, 1), (0, 0), 1, None, np.empty((2, 4, 7, 7), np.float32))
    with pytest.raises(TypeError, match="out"):
        _core.max_pool2d(x, (2, 2), (2, 2), np.empty((2, 3, 5, 5), np.float64))


def area_resize_ref(plane, out_h, out_w):
    """Exact area means of one float64 plane (every input pixel a unit square)."""
    def weights(n_in, n_out):
        scale = n_in / n_out
        w = np.zeros((n_out, n_in))
        for i in range(n_out):
            lo, hi = i * scale, (i + 1) * scale
            for j in range(int(np.floor(lo)), min(n_in, int(np.ceil(hi)))):
                w[i, j] = max(0.0, min(hi, j + 1) - max(lo, j)) / scale
        return w

    return weights(plane.shape[0], out_h) @ plane @ weights(plane.shape[1], out_w).T


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 30), st.integers(1, 30), st.integers(1, 30), st.integers(1, 30),
    st.integers(0, 2**31),
)
def test_resize_area_matches_exact_area_means(box_w, box_h, out_w, out_h, seed):
    rng = np.random.default_rng(seed)
    image = random_tensor(rng, (2, 35, 33))
    x0, y0 = int(rng.integers(0, 34 - min(box_w, 33))), int(rng.integers(0, 36 - min(box_h, 35)))
    box_w, box_h = min(box_w, 33 - x0), min(box_h, 35 - y0)
    got = nn.resize_area(image, [[x0, y0, x0 + box_w, y0 + box_h]], (out_h, out_w))
    assert got.shape == (1, 2, out_h, out_w) and got.dtype == np.float32
    for c in range(2):
        crop = image[c, y0 : y0 + box_h, x0 : x0 + box_w].astype(np.float64)
        np.testing.assert_allclose(got[0, c], area_resize_ref(crop, out_h, out_w), atol=2e-6)


def test_resize_area_equals_opencv_inter_area(rng):
    cv2 = pytest.importorskip("cv2")
    image = random_tensor(rng, (50, 70, 3))
    planar = np.ascontiguousarray(image.transpose(2, 0, 1))
    boxes = [[0, 0, 70, 50], [5, 7, 53, 40], [10, 3, 19, 14], [60, 40, 70, 50]]
    for side in (7, 24, 48):
        got = nn.resize_area(planar, boxes, side)
        for k, (x0, y0, x1, y1) in enumerate(boxes):
            if (x1 - x0 >= side) != (y1 - y0 >= side):
                continue  # one side shrinks, the other grows: OpenCV interpolates linearly
            ref = cv2.resize(image[y0:y1, x0:x1], (side, side), interpolation=cv2.INTER_AREA)
            np.testing.assert_allclose(got[k].transpose(1, 2, 0), ref, atol=1e-5)


@pytest.mark.parametrize(
    "boxes, error",
    [
        ([[0, 0, 0, 5]], ValueError),  # empty
        ([[0, 0, 11, 5]], ValueError),  # past the right edge
        ([[-1, 0, 4, 5]], ValueError),
        ([[0, 0, 4]], ValueError),
        ([[0.0, 0.0, 4.0, 5.0]], TypeError),
    ],
)
def test_resize_area_rejects_bad_boxes(boxes, error):
    with pytest.raises(error, match="box"):
        nn.resize_area(np.zeros((3, 8, 10), np.float32), boxes, 4)


def test_resize_area_from_uint8_folds_channel_order_and_normalisation(rng):
    image = rng.integers(0, 256, (31, 45, 3), dtype=np.uint8)
    boxes = np.array([[0, 0, 45, 31], [3, 4, 20, 30], [40, 25, 45, 31]], np.int64)
    planar = np.ascontiguousarray(image.transpose(2, 0, 1)[::-1], dtype=np.float32)
    expected = (nn.resize_area(planar, boxes, (13, 17)) - 127.5) / 128
    got = _core.resize_area_boxes_u8(image, boxes, (13, 17), True, 1 / 128, -127.5 / 128)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    same_order = _core.resize_area_boxes_u8(image, boxes, (13, 17))
    np.testing.assert_allclose(same_order[:, ::-1], nn.resize_area(planar, boxes, (13, 17)),
                               atol=1e-4)


def test_avx2_path_matches_scalar_on_avx512_cpus():
    """With AVX-512 present the in-process checks run AVX-512 against scalar; this runs AVX2."""
    import os
    import subprocess
    import sys

    if nn.simd_level() != "avx512":
        pytest.skip("no AVX-512 on this CPU (the AVX2 path is the one tested in-process)")
    code = (
        "import numpy as np\n"
        "from masksegx import nn\n"
        "assert nn.simd_level() == 'avx2', nn.simd_level()\n"
        "rng = np.random.default_rng(0)\n"
        "cases = [((1, 3, 37, 45), (16, 3, 4, 4), 2, 0, 1), ((2, 10, 33, 41), (10, 1, 3, 3), 1, 0, 10),\n"
        "         ((5, 48, 4, 4), (64, 48, 2, 2), 1, 0, 1), ((1, 10, 29, 37), (16, 10, 1, 1), 1, 0, 1),\n"
        "         ((5, 3, 24, 24), (16, 3, 4, 4), 2, 0, 1), ((2, 3, 48, 48), (32, 3, 4, 4), 2, 0, 1)]\n"
        "for xs, ws, s, p, g in cases:\n"
        "    x = rng.uniform(-1, 1, xs).astype(np.float32)\n"
        "    w = rng.uniform(-1, 1, ws).astype(np.float32)\n"
        "    slope = rng.uniform(-1, 1, ws[0]).astype(np.float32)\n"
        "    simd = nn.conv2d(x, w, stride=s, padding=p, groups=g, slope=slope)\n"
        "    nn.set_simd(False)\n"
        "    scalar = nn.conv2d(x, w, stride=s, padding=p, groups=g, slope=slope)\n"
        "    nn.set_simd(True)\n"
        "    np.testing.assert_allclose(simd, scalar, rtol=1e-5, atol=1e-5)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, MASKSEGX_NO_AVX512="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("w", [9, 16, 17, 21, 22, 31, 32, 33])
@pytest.mark.parametrize("kernel", [2, 3])
def test_max_pool2d_narrow_rows_stride_2(rng, w, kernel):
    """The R/O-net pools (rows of up to 32 columns, stride 2) have their own SIMD path."""
    x = random_tensor(rng, (3, 5, w + 1, w))
    for stride in ((2, 2), (1, 2)):
        got = nn.max_pool2d(x, kernel, stride)
        np.testing.assert_array_equal(got, max_pool2d_ref(x, (kernel, kernel), stride))


# ---- SIMD (NEON on aarch64, AVX2/AVX-512 on x86-64) against scalar at every tile edge ---------
# Tolerance: every path sums k in the same order, so SIMD and scalar differ only by FMA rounding:
# |simd - scalar| <= 1e-5 * sum_k |w_k x_k| (the magnitude of the summed terms), per element.


def test_simd_level_matches_the_machine():
    """NEON is part of the aarch64 baseline, so an aarch64 build must always report it."""
    import platform

    if platform.machine().lower() in ("aarch64", "arm64"):
        assert nn.simd_level() == "neon"
    else:
        assert nn.simd_level() in ("avx512", "avx2", "scalar")


# Output rows 1..9 and planes of 1..17 and 72/81 pixels: the NEON 4x8 and 1x8 GEMM tiles, the
# AVX2 4x16 and AVX-512 8x32 tiles, their scalar column tails, and batched small planes.
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 8, 9])
@pytest.mark.parametrize("plane", [(1, 1), (1, 7), (3, 3), (1, 17), (8, 9), (9, 9)])
def test_simd_matches_scalar_gemm_tile_edges(rng, scalar_and_simd, rows, plane):
    x = random_tensor(rng, (2, 6) + plane)
    weight, bias = random_tensor(rng, (rows, 6, 1, 1)), random_tensor(rng, (rows,))
    slope = random_tensor(rng, (rows,))
    scale = conv2d_ref(np.abs(x), np.abs(weight), None, (1, 1), (0, 0), 1)
    for kwargs in ({}, {"slope": slope}):
        simd, scalar = scalar_and_simd(nn.conv2d, x, weight, bias, **kwargs)
        assert np.all(np.abs(simd - scalar) <= 1e-5 * scale)


# Output widths 1..9 and 13: the 4-wide NEON, 8-wide AVX2 and 16-wide AVX-512 depthwise rows
# and their scalar tails, at stride 1 and 2, with and without padding and fused PReLU.
@pytest.mark.parametrize("width", [3, 4, 5, 6, 7, 8, 10, 11, 15])
@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 1)])
def test_simd_matches_scalar_depthwise_row_edges(rng, scalar_and_simd, width, stride, padding):
    x = random_tensor(rng, (2, 5, 6, width))
    weight, bias = random_tensor(rng, (5, 1, 3, 3)), random_tensor(rng, (5,))
    slope = random_tensor(rng, (5,))
    kwargs = dict(stride=stride, padding=padding, groups=5)
    scale = conv2d_ref(np.abs(x), np.abs(weight), None, (stride,) * 2, (padding,) * 2, 5)
    for fused in ({}, {"slope": slope}):
        simd, scalar = scalar_and_simd(nn.conv2d, x, weight, bias, **kwargs, **fused)
        assert np.all(np.abs(simd - scalar) <= 1e-5 * scale)


@pytest.mark.parametrize("n, m, k", [(1, 1, 1), (3, 5, 7), (2, 9, 17), (4, 16, 64)])
def test_simd_matches_scalar_fully_connected_edges(rng, scalar_and_simd, n, m, k):
    x, weight, bias = random_tensor(rng, (n, k)), random_tensor(rng, (m, k)), random_tensor(rng, (m,))
    simd, scalar = scalar_and_simd(nn.fully_connected, x, weight, bias)
    assert np.all(np.abs(simd - scalar) <= 1e-5 * (np.abs(x) @ np.abs(weight).T))


def test_core_two_class_softmax_keeps_nan_to_its_own_pair():
    """The kernel behind nn.softmax (which refuses NaN) on a NaN logit: that pair is NaN, the
    others exact; the exponential's integer conversion never sees the NaN (the sanitized fuzzer
    found it undefined)."""
    x = np.array([[np.nan, 0.0], [1.0, np.inf], [2.0, 1.0]], np.float32)
    got = _core.softmax(x, 1)
    assert np.isnan(got[0]).all()
    np.testing.assert_allclose(got[1:], [[0, 1], [0.7310586, 0.2689414]], atol=1e-6)


def test_simd_matches_scalar_resize_and_two_class_softmax(rng, scalar_and_simd):
    """Elementwise loops compiled per instruction set: the same bits on every path."""
    image = rng.integers(0, 256, (40, 57, 3), dtype=np.uint8)
    planar = random_tensor(rng, (3, 40, 57))
    boxes = np.array([[0, 0, 57, 40], [3, 4, 50, 31], [40, 25, 45, 31]], np.int64)
    simd, scalar = scalar_and_simd(_core.resize_area_boxes_u8, image, boxes, (24, 24), True, 0.5, -1.0)
    np.testing.assert_array_equal(simd, scalar)
    simd, scalar = scalar_and_simd(_core.resize_area_boxes, planar, boxes, (13, 17))
    np.testing.assert_array_equal(simd, scalar)
    logits = random_tensor(rng, (3, 2, 37)) * 50
    simd, scalar = scalar_and_simd(nn.softmax, logits, 1)
    np.testing.assert_array_equal(simd, scalar)


def test_simd_matches_scalar_face_detection(scalar_and_simd):
    """The whole MTCNN cascade on a bundled photo: the same faces, boxes within 0.01 px and
    scores within 1e-4 (rounding differences stay far from the cascade's thresholds)."""
    cv2 = pytest.importorskip("cv2")
    from masksegx.detect import FaceDetector
    from masksegx.examples import EXAMPLES

    image = cv2.imread(EXAMPLES[1].path)
    simd, scalar = scalar_and_simd(FaceDetector(backend="native"), image)
    assert len(simd.scores) == len(scalar.scores) >= 1
    np.testing.assert_allclose(simd.boxes, scalar.boxes, atol=1e-2)
    np.testing.assert_allclose(simd.landmarks, scalar.landmarks, atol=1e-2)
    np.testing.assert_allclose(simd.scores, scalar.scores, atol=1e-4)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 1, 5), (1, 2, 7, 4), (3, 4, 10, 10)])
def test_upsample_linear2x_matches_half_pixel_bilinear(rng, shape):
    """Twice the size, half-pixel centres, edges clamped (ONNX Resize linear, scales 2)."""
    x = rng.standard_normal(shape).astype(np.float32)

    def along(values, axis):
        size = values.shape[axis]
        source = np.clip((np.arange(2 * size) + 0.5) / 2 - 0.5, 0, size - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, size - 1)
        frac = (source - low).reshape([-1 if a == axis % values.ndim else 1
                                       for a in range(values.ndim)])
        return np.take(values, low, axis) * (1 - frac) + np.take(values, high, axis) * frac

    expected = along(along(x.astype(np.float64), 2), 3)
    np.testing.assert_allclose(_core.upsample_linear2x(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="4 dimensions"):
        _core.upsample_linear2x(x[0])
