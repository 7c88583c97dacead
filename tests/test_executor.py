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
