"""NativeNet (ONNX graphs on the masksegx.nn kernels) against onnxruntime."""

import numpy as np
import onnxruntime
import pytest

from masksegx._executor import NativeNet, UnsupportedOperator
from onnx_builder import model, node, tiny_onet, tiny_pnet, tiny_rnet


def _onnxruntime(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input": x})))


@pytest.mark.parametrize(
    "build, shape",
    [
        (lambda rng: tiny_pnet(rng), (2, 3, 31, 45)),
        (lambda rng: tiny_pnet(rng), (1, 3, 12, 12)),
        (lambda rng: tiny_pnet(rng, separable=False), (1, 3, 17, 13)),
        (tiny_rnet, (5, 3, 24, 24)),
        (tiny_onet, (3, 3, 48, 48)),
        (tiny_onet, (1, 3, 48, 48)),
    ],
)
def test_native_equals_onnxruntime(tmp_path, rng, build, shape):
    path = tmp_path / "net.onnx"
    path.write_bytes(build(rng))
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    native = NativeNet(path)(x)
    reference = _onnxruntime(path, x)
    assert native.keys() == reference.keys()
    for name in reference:
        assert native[name].shape == reference[name].shape
        np.testing.assert_allclose(native[name], reference[name], atol=1e-4, rtol=0)


def test_floor_mode_pooling_softmax_before_opset_13_and_matmul(tmp_path, rng):
    weight = rng.standard_normal((12, 5)).astype(np.float32)
    data = model(
        [
            node("MaxPool", ["input"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
            node("Relu", ["pooled"], ["positive"]),
            node("Flatten", ["positive"], ["flat"], axis=1),
            node("MatMul", ["flat", "w"], ["logits"]),
            node("Softmax", ["logits"], ["prob"], axis=1),
            node("Softmax", ["positive"], ["spread"], axis=1),  # opset 11: over C*H*W at once
        ],
        {"w": weight},
        [("input", ["N", 3, 5, 4])],
        [("prob", ["N", 5]), ("spread", ["N", 3, 2, 2])],
        opset=11,
    )
    path = tmp_path / "misc.onnx"
    path.write_bytes(data)
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    native, reference = NativeNet(path)(x), _onnxruntime(path, x)
    for name in ("prob", "spread"):
        np.testing.assert_allclose(native[name], reference[name], atol=1e-5, rtol=0)


def test_sibling_pointwise_convs_run_as_one(tmp_path, rng):
    """Three 1x1 convs on one tensor (one with a fused PReLU, one without a bias) run as one
    conv and a channel split, with onnxruntime's answers for batch 1 and 3."""
    weights = {f"w{i}": rng.standard_normal((c, 4, 1, 1)).astype(np.float32)
               for i, c in enumerate((2, 3, 5))}
    weights.update(b0=rng.standard_normal(2).astype(np.float32),
                   b2=rng.standard_normal(5).astype(np.float32),
                   slope=rng.uniform(0.1, 0.3, (3, 1, 1)).astype(np.float32),
                   w3=rng.standard_normal((3, 4, 3, 3)).astype(np.float32))
    data = model(
        [
            node("Conv", ["input", "w0", "b0"], ["a"], kernel_shape=[1, 1]),
            node("Conv", ["input", "w1"], ["b_raw"], kernel_shape=[1, 1]),
            node("PRelu", ["b_raw", "slope"], ["b"]),
            node("Conv", ["input", "w2", "b2"], ["c"], kernel_shape=[1, 1]),
            node("Softmax", ["c"], ["c_prob"], axis=1),
            node("Conv", ["input", "w3"], ["d"], kernel_shape=[3, 3]),  # not 1x1: stays
        ],
        weights,
        [("input", ["N", 4, 6, 7])],
        [("a", ["N", 2, 6, 7]), ("b", ["N", 3, 6, 7]), ("c_prob", ["N", 5, 6, 7]),
         ("d", ["N", 3, 4, 5])],
    )
    path = tmp_path / "heads.onnx"
    path.write_bytes(data)
    net = NativeNet(path)
    assert len(net._steps) == 4  # merged conv, split, softmax, 3x3 conv
    for batch in (1, 3):
        x = rng.standard_normal((batch, 4, 6, 7)).astype(np.float32)
        native, reference = net(x), _onnxruntime(path, x)
        for name in reference:
            assert native[name].flags.c_contiguous and native[name].flags.owndata
            np.testing.assert_allclose(native[name], reference[name], atol=1e-5, rtol=0)


def test_unsupported_operator_and_dangling_input_name_the_file(tmp_path):
    path = tmp_path / "lstm.onnx"
    io = ([("input", [1, 3])], [("y", [1, 3])])
    path.write_bytes(model([node("LSTM", ["input"], ["y"])], {}, *io))
    with pytest.raises(UnsupportedOperator, match=r"lstm\.onnx.*'LSTM'"):
        NativeNet(path)
    path = tmp_path / "dangling.onnx"
    path.write_bytes(model([node("Relu", ["nowhere"], ["y"])], {}, *io))
    with pytest.raises(ValueError, match=r"dangling\.onnx.*nowhere"):
        NativeNet(path)


def test_bad_feed(tmp_path, rng):
    path = tmp_path / "p.onnx"
    path.write_bytes(tiny_pnet(rng))
    net = NativeNet(path)
    assert net.input_names == ("input",) and net.output_names == ("reg", "prob")
    with pytest.raises(ValueError, match="missing input"):
        net.run({"other": np.zeros((1, 3, 12, 12), np.float32)})
    with pytest.raises(ValueError, match="NaN"):
        net(np.full((1, 3, 12, 12), np.nan, np.float32))


def _segmentation_ops_model(rng, opset=13):
    """The operators of the attribute net and MaskNet beside the detector's: input scaling,
    Conv + Relu, a dilated depthwise conv, residual Add, global pooling, 2x linear Resize,
    Concat, Sigmoid, floor-mode MaxPool, Cast, LogSoftmax and Exp."""
    weights = {
        "scale": np.array(0.0157, np.float32), "shift": np.array(2.0, np.float32),
        "w1": rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.3,
        "b1": rng.standard_normal(6).astype(np.float32) * 0.1,
        "wd": rng.standard_normal((6, 1, 3, 3)).astype(np.float32) * 0.3,
        "bd": rng.standard_normal(6).astype(np.float32) * 0.1,
        "wp": rng.standard_normal((4, 12, 1, 1)).astype(np.float32) * 0.3,
        "wh": rng.standard_normal((5, 4, 1, 1)).astype(np.float32) * 0.3,
        "twice": np.array([1, 1, 2, 2], np.float32),
    }
    nodes = [
        node("Mul", ["input", "scale"], ["scaled"]),
        node("Sub", ["scaled", "shift"], ["centred"]),
        node("Conv", ["centred", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Relu", ["c1"], ["r1"]),
        node("Conv", ["r1", "wd", "bd"], ["cd"], kernel_shape=[3, 3], pads=[2, 2, 2, 2],
             dilations=[2, 2], group=6),
        node("Relu", ["cd"], ["rd"]),
        node("Add", ["r1", "rd"], ["res"]),
        node("GlobalAveragePool", ["res"], ["context"]),
        node("Add", ["res", "context"], ["mixed"]),
        node("MaxPool", ["mixed"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Resize", ["pooled", "", "twice"], ["up"], mode="linear",
             coordinate_transformation_mode="half_pixel"),
        node("Concat", ["up", "mixed"], ["joined"], axis=1),
        node("Conv", ["joined", "wp"], ["p"], kernel_shape=[1, 1]),
        node("Sigmoid", ["p"], ["prob"]),
        node("GlobalAveragePool", ["p"], ["g"]),
        node("Conv", ["g", "wh"], ["logits4"], kernel_shape=[1, 1]),
        node("Flatten", ["logits4"], ["logits"], axis=1),
        node("Cast", ["logits"], ["cast"], to=1),
        node("LogSoftmax", ["cast"], ["log"], axis=1),
        node("Exp", ["log"], ["classes"]),
    ]
    return model(nodes, weights, [("input", ["N", 3, "H", "W"])],
                 [("prob", ["N", 4, "H", "W"]), ("classes", ["N", 5])], opset=opset)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (3, 3, 12, 16), (2, 3, 10, 6)])
def test_segmentation_operators_equal_onnxruntime(tmp_path, rng, shape):
    path = tmp_path / "seg.onnx"
    path.write_bytes(_segmentation_ops_model(rng))
    x = rng.uniform(0, 255, shape).astype(np.float32)
    net = NativeNet(path)
    assert not any(step[0].__qualname__.startswith("_relu") for step in net._steps)  # fused
    native, reference = net(x), _onnxruntime(path, x)
    for name in reference:
        assert native[name].shape == reference[name].shape
        np.testing.assert_allclose(native[name], reference[name], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "attributes, extra",
    [
        ({"coordinate_transformation_mode": "half_pixel"}, np.array([1, 1, 1.5, 3], np.float32)),
        ({"coordinate_transformation_mode": "align_corners"}, np.array([1, 1, 2, 0.5], np.float32)),
        ({"coordinate_transformation_mode": "asymmetric"}, np.array([1, 1, 3, 2], np.float32)),
        ({"coordinate_transformation_mode": "pytorch_half_pixel"},
         np.array([1, 1, 2, 2], np.float32)),
    ],
)
def test_linear_resize_of_other_scales_equals_onnxruntime(tmp_path, rng, attributes, extra):
    data = model([node("Resize", ["input", "", "scales"], ["y"], mode="linear", **attributes)],
                 {"scales": extra}, [("input", ["N", 2, 5, 6])], [("y", ["N", 2, "h", "w"])])
    path = tmp_path / "resize.onnx"
    path.write_bytes(data)
    x = rng.standard_normal((2, 2, 5, 6)).astype(np.float32)
    native, reference = NativeNet(path)(x), _onnxruntime(path, x)
    assert native["y"].shape == reference["y"].shape
    np.testing.assert_allclose(native["y"], reference["y"], atol=1e-5, rtol=0)


def test_unsupported_resize_and_cast_are_refused(tmp_path):
    io = ([("input", [1, 1, 2, 2])], [("y", [1, 1, 4, 4])])
    scales = {"scales": np.array([1, 1, 2, 2], np.float32)}
    path = tmp_path / "nearest.onnx"
    path.write_bytes(model([node("Resize", ["input", "", "scales"], ["y"], mode="nearest")],
                           scales, *io))
    with pytest.raises(UnsupportedOperator, match="mode"):
        NativeNet(path)
    path = tmp_path / "cast.onnx"
    path.write_bytes(model([node("Cast", ["input"], ["y"], to=7)], {}, *io))
    with pytest.raises(UnsupportedOperator, match="FLOAT"):
        NativeNet(path)


@pytest.mark.parametrize(
    "name, shape, low, high",
    [("attributes", (1, 3, 64, 64), -1, 1), ("attributes", (5, 3, 64, 64), -1, 1),
     ("masknet", (1, 3, 160, 160), 0, 255), ("masknet", (2, 3, 160, 160), 0, 255),
     ("ds_mtcnn_rnet_closeup", (9, 3, 24, 24), -1, 1),
     ("ds_mtcnn_onet_closeup", (7, 3, 48, 48), -1, 1)],
)
def test_shipped_nets_native_equal_onnxruntime(rng, name, shape, low, high):
    from masksegx._models import MODEL_DIR

    path = MODEL_DIR / f"{name}.onnx"
    x = rng.uniform(low, high, shape).astype(np.float32)
    native, reference = NativeNet(path)(x), _onnxruntime(path, x)
    for key in reference:
        np.testing.assert_allclose(native[key], reference[key], atol=2e-5, rtol=0)


@pytest.mark.parametrize("shape, dilation, groups", [((1, 4, 9, 7), 2, 4), ((2, 4, 11, 8), 3, 1)])
def test_dilated_conv_of_any_side_equals_onnxruntime(tmp_path, rng, shape, dilation, groups):
    weight = rng.standard_normal((4, 4 // groups, 3, 3)).astype(np.float32)
    data = model([node("Conv", ["input", "w"], ["y"], kernel_shape=[3, 3], group=groups,
                       pads=[dilation] * 4, dilations=[dilation, dilation])],
                 {"w": weight}, [("input", ["N", 4, "H", "W"])], [("y", ["N", 4, "H", "W"])])
    path = tmp_path / "dilated.onnx"
    path.write_bytes(data)
    x = rng.standard_normal(shape).astype(np.float32)
    native, reference = NativeNet(path)(x), _onnxruntime(path, x)
    np.testing.assert_allclose(native["y"], reference["y"], atol=1e-5, rtol=0)


def test_multiply_adds_count_conv_and_gemm_layers(tmp_path, rng):
    path = tmp_path / "r.onnx"
    path.write_bytes(tiny_rnet(rng))
    net = NativeNet(path)
    x = rng.uniform(-1, 1, (3, 3, 24, 24)).astype(np.float32)
    # Per sample, from the layer shapes: every conv's output size x (C / groups x kh x kw),
    # every Gemm's outputs x K; counted by hand below from the graph's constants.
    expected = 0
    shapes = {name: value.shape for name, value in net._constants.items()}
    observed = []
    net._evaluate({"input": x}, lambda i, results: observed.append((i, results[0].size)))
    for index, size in observed:
        kernel, inputs = net._steps[index][0], net._steps[index][1]
        name = kernel.__qualname__.split(".")[0]
        if name == "_conv":
            expected += size * int(np.prod(shapes[inputs[1]][1:]))
        elif name == "_gemm":
            expected += size * shapes[inputs[1]][1]
    assert expected > 0 and net.multiply_adds({"input": x}) == expected


@pytest.mark.parametrize("threads", [2, 3])
def test_parallel_threads_give_the_serial_results(rng, monkeypatch, threads):
    """Batches split over threads answer as the serial run does; single samples run whole."""
    from masksegx import _executor
    from masksegx._models import DETECTOR_MODELS, MASKNET_MODEL

    splits = []

    def counting(count, work, items):
        splits.append(len(items))
        return run_in_parallel(count, work, items)

    from masksegx._models import run_in_parallel

    monkeypatch.setattr(_executor, "run_in_parallel", counting)
    cases = [(DETECTOR_MODELS[0], (1, 3, 150, 200)), (DETECTOR_MODELS[1], (7, 3, 24, 24)),
             (MASKNET_MODEL, (1, 3, 160, 160))]
    for path, shape in cases:
        net = NativeNet(path)
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        serial = net(x)
        with _executor.parallel_threads(threads):
            parallel = net(x)
        for name in serial:
            np.testing.assert_allclose(parallel[name], serial[name], atol=1e-6, rtol=0)
    assert splits == [min(threads, 7)]  # the R-net's batch of 7 only


def _fully_convolutional_pnet(rng):
    """A P-net shaped as the package's own (strided first conv, no pooling, no padding)."""
    weights = {
        "w1": rng.standard_normal((16, 3, 4, 4)).astype(np.float32) * 0.3,
        "b1": rng.standard_normal(16).astype(np.float32) * 0.1,
        "s1": rng.uniform(0.05, 0.3, (16, 1, 1)).astype(np.float32),
        "wd": rng.standard_normal((16, 1, 3, 3)).astype(np.float32) * 0.3,
        "wp": rng.standard_normal((16, 16, 1, 1)).astype(np.float32) * 0.3,
        "wf": rng.standard_normal((2, 16, 1, 1)).astype(np.float32) * 0.3,
        "wr": rng.standard_normal((4, 16, 1, 1)).astype(np.float32) * 0.3,
    }
    nodes = [
        node("Conv", ["input", "w1", "b1"], ["c1"], kernel_shape=[4, 4], strides=[2, 2]),
        node("PRelu", ["c1", "s1"], ["p1"]),
        node("Conv", ["p1", "wd"], ["d"], kernel_shape=[3, 3], group=16),
        node("Conv", ["d", "wp"], ["c2"], kernel_shape=[1, 1]),
        node("Relu", ["c2"], ["r2"]),
        node("Conv", ["r2", "wf"], ["logits"], kernel_shape=[1, 1]),
        node("Softmax", ["logits"], ["prob"], axis=1),
        node("Conv", ["r2", "wr"], ["reg"], kernel_shape=[1, 1]),
    ]
    return model(nodes, weights, [("input", ["N", 3, "H", "W"])],
                 [("reg", ["N", 4, "h", "w"]), ("prob", ["N", 2, "h", "w"])])


@pytest.mark.parametrize("shape", [(1, 3, 411, 223), (1, 3, 160, 420)])
def test_a_large_image_runs_in_bands_with_the_same_values(tmp_path, rng, shape):
    from masksegx import _executor

    path = tmp_path / "p.onnx"
    path.write_bytes(_fully_convolutional_pnet(rng))
    net = NativeNet(path)
    assert net._rows == (2, 8)  # output row r sees input rows [2 r, 2 r + 8)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    assert x.shape[2] * x.shape[3] >= 2 * _executor.BAND_PIXELS  # large enough to be banded
    whole = net._run_whole({"input": x})
    banded = net(x)
    for name in whole:
        np.testing.assert_array_equal(banded[name], whole[name])
    reference = _onnxruntime(path, x)
    for name in reference:
        np.testing.assert_allclose(banded[name], reference[name], atol=1e-4, rtol=0)
    standard = tmp_path / "standard.onnx"
    standard.write_bytes(tiny_pnet(rng))
    assert NativeNet(standard)._rows is None  # it pools in ceil mode: not banded


def test_padded_or_ceil_mode_graphs_are_not_banded(tmp_path, rng):
    weight = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32)}
    io = ([("input", ["N", 3, "H", "W"])], [("y", ["N", 4, "h", "w"])])
    path = tmp_path / "padded.onnx"
    path.write_bytes(model([node("Conv", ["input", "w"], ["y"], kernel_shape=[3, 3],
                                 pads=[1, 1, 1, 1])], weight, *io))
    assert NativeNet(path)._rows is None
    path = tmp_path / "ceil.onnx"
    path.write_bytes(model([node("Conv", ["input", "w"], ["c"], kernel_shape=[3, 3]),
                            node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                                 ceil_mode=1)], weight, *io))
    assert NativeNet(path)._rows is None
    path = tmp_path / "floor.onnx"
    path.write_bytes(model([node("Conv", ["input", "w"], ["c"], kernel_shape=[3, 3]),
                            node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
                           weight, *io))
    assert NativeNet(path)._rows == (2, 4)
