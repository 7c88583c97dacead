"""Hand-encoded ONNX models for tests (protobuf wire format, no ``onnx`` package needed).

``tiny_pnet/rnet/onet`` build random-weight MTCNN-shaped nets with the same inputs, outputs and
conventions as the reference ``mtcnn_*.onnx`` files (dynamic batch; R-net reshapes through
Shape/Gather/Unsqueeze/Concat like the PyTorch export, O-net uses Flatten; optional
depthwise-separable convolutions).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 as ten bytes, like protobuf
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _bytes_field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _str_field(number: int, text: str) -> bytes:
    return _bytes_field(number, text.encode())


def tensor(name: str, array: np.ndarray) -> bytes:
    array = np.asarray(array)
    data_type = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}[array.dtype]
    dims = b"".join(_int_field(1, int(d)) for d in array.shape)  # unpacked repeated dims
    raw = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
    return dims + _int_field(2, data_type) + _str_field(8, name) + _bytes_field(9, raw)


def _attribute(name: str, value: object) -> bytes:
    head = _str_field(1, name)
    if isinstance(value, np.ndarray):
        return head + _bytes_field(5, tensor("", value)) + _int_field(20, 4)
    if isinstance(value, bool) or isinstance(value, int):
        return head + _int_field(3, int(value)) + _int_field(20, 2)
    if isinstance(value, float):
        return head + _varint(2 << 3 | 5) + struct.pack("<f", value) + _int_field(20, 1)
    if isinstance(value, str):
        return head + _str_field(4, value) + _int_field(20, 3)
    if all(isinstance(v, int) for v in value):  # packed repeated ints
        return head + _bytes_field(8, b"".join(_varint(v) for v in value)) + _int_field(20, 7)
    packed = struct.pack(f"<{len(value)}f", *value)
    return head + _bytes_field(7, packed) + _int_field(20, 6)


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attributes) -> bytes:
    body = b"".join(_str_field(1, name) for name in inputs)
    body += b"".join(_str_field(2, name) for name in outputs)
    body += _str_field(4, op_type)
    body += b"".join(_bytes_field(5, _attribute(k, v)) for k, v in attributes.items())
    return body


def _value_info(name: str, dims: Sequence[object]) -> bytes:
    shape = b"".join(
        _bytes_field(1, _str_field(2, d) if isinstance(d, str) else _int_field(1, d)) for d in dims
    )
    tensor_type = _int_field(1, 1) + _bytes_field(2, shape)
    return _str_field(1, name) + _bytes_field(2, _bytes_field(1, tensor_type))


def model(
    nodes: list[bytes],
    initializers: dict,
    inputs: Sequence[tuple],
    outputs: Sequence[tuple],
    opset: int = 13,
) -> bytes:
    graph = b"".join(_bytes_field(1, n) for n in nodes) + _str_field(2, "test")
    graph += b"".join(_bytes_field(5, tensor(k, v)) for k, v in initializers.items())
    graph += b"".join(_bytes_field(11, _value_info(name, dims)) for name, dims in inputs)
    graph += b"".join(_bytes_field(12, _value_info(name, dims)) for name, dims in outputs)
    opset_id = _str_field(1, "") + _int_field(2, opset)
    return _int_field(1, 8) + _bytes_field(8, opset_id) + _bytes_field(7, graph)


class _NetBuilder:
    """Accumulates layers of a random-weight MTCNN-like net."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.nodes, self.weights, self.count = rng, [], {}, 0

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def _param(self, kind: str, shape: Sequence[int], scale: float) -> str:
        name = self._name(kind)
        self.weights[name] = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        return name

    def conv(
        self, x: str, c_in: int, c_out: int, k: int, groups: int = 1, out: str = "",
        weight_scale: float = 1.0, bias_shift: float = 0.0,
    ) -> str:
        fan_in = c_in // groups * k * k
        weight = self._param("w", (c_out, c_in // groups, k, k), weight_scale / np.sqrt(fan_in))
        bias = self._param("b", (c_out,), 0.1)
        self.weights[bias][-1] += bias_shift  # raises the face logit of a classifier head
        out = out or self._name("conv")
        self.nodes.append(
            node("Conv", [x, weight, bias], [out], kernel_shape=[k, k], pads=[0, 0, 0, 0],
                 strides=[1, 1], group=groups, dilations=[1, 1])
        )
        return out

    def separable(self, x: str, c_in: int, c_out: int, k: int) -> str:
        return self.conv(self.conv(x, c_in, c_in, k, groups=c_in), c_in, c_out, 1)

    def prelu(self, x: str, channels: int, spatial: bool = True) -> str:
        shape = (channels, 1, 1) if spatial else (channels,)
        slope = self._name("slope")
        self.weights[slope] = self.rng.uniform(0.05, 0.3, shape).astype(np.float32)
        out = self._name("prelu")
        self.nodes.append(node("PRelu", [x, slope], [out]))
        return out

    def relu(self, x: str) -> str:
        out = self._name("relu")
        self.nodes.append(node("Relu", [x], [out]))
        return out

    def pool(self, x: str, k: int) -> str:
        out = self._name("pool")
        self.nodes.append(node("MaxPool", [x], [out], kernel_shape=[k, k], strides=[2, 2],
                               ceil_mode=1, pads=[0, 0, 0, 0]))
        return out

    def gemm(
        self, x: str, k: int, m: int, out: str = "",
        weight_scale: float = 1.0, bias_shift: float = 0.0,
    ) -> str:
        weight = self._param("fc", (m, k), weight_scale / np.sqrt(k))
        bias = self._param("fcb", (m,), 0.1)
        self.weights[bias][-1] += bias_shift
        out = out or self._name("gemm")
        self.nodes.append(node("Gemm", [x, weight, bias], [out], alpha=1.0, beta=1.0, transB=1))
        return out

    def softmax(self, x: str, out: str) -> str:
        self.nodes.append(node("Softmax", [x], [out], axis=1))
        return out


def tiny_pnet(rng: np.random.Generator, *, separable: bool = True, face_bias: float = 3.0) -> bytes:
    net = _NetBuilder(rng)
    x = net.pool(net.prelu(net.conv("input", 3, 6, 3), 6), 2)
    x = net.separable(x, 6, 8, 3) if separable else net.conv(x, 6, 8, 3)
    x = net.prelu(net.conv(net.prelu(x, 8), 8, 12, 3), 12)
    net.softmax(net.conv(x, 12, 2, 1, bias_shift=face_bias), "prob")
    # Small regressions keep the boxes near their cells.
    net.conv(x, 12, 4, 1, out="reg", weight_scale=0.05)
    return model(
        net.nodes, net.weights, [("input", ["N", 3, "H", "W"])],
        [("reg", ["N", 4, "h", "w"]), ("prob", ["N", 2, "h", "w"])],
    )


def tiny_rnet(rng: np.random.Generator, *, face_bias: float = 3.0) -> bytes:
    net = _NetBuilder(rng)
    x = net.pool(net.prelu(net.conv("input", 3, 6, 3), 6), 3)
    x = net.pool(net.prelu(net.separable(x, 6, 8, 3), 8), 3)
    x = net.prelu(net.conv(x, 8, 10, 2), 10)  # [N, 10, 3, 3]
    net.nodes += [
        node("Transpose", [x], ["permuted"], perm=[0, 3, 2, 1]),
        node("Shape", ["permuted"], ["shape"]),
        node("Constant", [], ["zero"], value=np.array(0, np.int64)),
        node("Gather", ["shape", "zero"], ["batch"], axis=0),
        node("Constant", [], ["axes"], value=np.array([0], np.int64)),
        node("Unsqueeze", ["batch", "axes"], ["batch1"]),
        node("Constant", [], ["rest"], value=np.array([-1], np.int64)),
        node("Concat", ["batch1", "rest"], ["target"], axis=0),
        node("Reshape", ["permuted", "target"], ["flat"]),
    ]
    hidden = net.prelu(net.gemm("flat", 90, 16), 16, spatial=False)
    net.softmax(net.gemm(hidden, 16, 2, bias_shift=face_bias), "prob")
    net.gemm(hidden, 16, 4, out="reg", weight_scale=0.05)
    return model(
        net.nodes, net.weights, [("input", ["N", 3, 24, 24])],
        [("reg", ["N", 4]), ("prob", ["N", 2])],
    )


def _tiny_trunk48(net: _NetBuilder) -> str:
    """48x48 input -> a 16-wide hidden vector, O-net style."""
    x = net.pool(net.prelu(net.conv("input", 3, 6, 3), 6), 3)
    x = net.pool(net.prelu(net.separable(x, 6, 8, 3), 8), 3)
    x = net.pool(net.prelu(net.conv(x, 8, 8, 3), 8), 2)
    x = net.prelu(net.conv(x, 8, 12, 2), 12)  # [N, 12, 3, 3]
    net.nodes.append(node("Flatten", [x], ["flat"], axis=1))
    return net.prelu(net.gemm("flat", 108, 16), 16, spatial=False)


def tiny_onet(rng: np.random.Generator, *, face_bias: float = 3.0) -> bytes:
    net = _NetBuilder(rng)
    hidden = _tiny_trunk48(net)
    net.softmax(net.gemm(hidden, 16, 2, bias_shift=face_bias), "prob")
    net.gemm(hidden, 16, 4, out="reg", weight_scale=0.05)
    net.gemm(hidden, 16, 10, out="landmarks")
    return model(
        net.nodes, net.weights, [("input", ["N", 3, 48, 48])],
        [("reg", ["N", 4]), ("landmarks", ["N", 10]), ("prob", ["N", 2])],
    )


def tiny_lnet(rng: np.random.Generator, *, weight_scale: float = 1.0) -> bytes:
    """A landmark net on 48x48 crops: output ``landmarks`` [N, 10] only. ``weight_scale=0``
    makes it answer its bias for every crop."""
    net = _NetBuilder(rng)
    hidden = _tiny_trunk48(net)
    net.gemm(hidden, 16, 10, out="landmarks", weight_scale=weight_scale)
    return model(net.nodes, net.weights, [("input", ["N", 3, 48, 48])], [("landmarks", ["N", 10])])


def tiny_attribute_net(rng: np.random.Generator, *, wearing_classes: int = 0,
                       gender_classes: int = 0) -> bytes:
    """A random-weight attribute net: [N, 3, 64, 64] -> ``probs`` [N, 22], and with
    ``wearing_classes`` / ``gender_classes`` the outputs ``wearing`` [N, wearing_classes] /
    ``gender`` [N, gender_classes] read from the same pooled features (the shipped file's heads
    have 3 and 2)."""
    net = _NetBuilder(rng)
    x = net.prelu(net.conv("input", 3, 8, 3), 8)
    # The last block as the shipped trunk's (the branch heads copy it): depthwise, Relu, 1x1,
    # Relu, MaxPool.
    x = net.relu(net.conv(net.relu(net.conv(x, 8, 8, 3, groups=8)), 8, 8, 1))
    net.nodes += [node("MaxPool", [x], ["last_pool"], kernel_shape=[2, 2], strides=[2, 2]),
                  node("GlobalAveragePool", ["last_pool"], ["pooled"]),
                  node("Flatten", ["pooled"], ["flat"], axis=1)]
    net.softmax(net.gemm("flat", 8, 22, weight_scale=3.0), "probs")
    outputs = [("probs", ["N", 22])]
    for name, classes in (("wearing", wearing_classes), ("gender", gender_classes)):
        if classes:
            net.softmax(net.gemm("flat", 8, classes, weight_scale=3.0), name)
            outputs.append((name, ["N", classes]))
    return model(net.nodes, net.weights, [("input", ["N", 3, 64, 64])], outputs)
