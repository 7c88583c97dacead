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
