"""A minimal reader of ONNX model files, without the ``onnx`` package.

Decodes just enough of the protobuf wire format (ModelProto -> GraphProto) to run small
inference graphs: nodes with their attributes, initializers (FLOAT and INT64 tensors), the
graph's input and output names and shapes, the model's metadata and the default-domain opset.
Anything else is skipped.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Union

import numpy as np

AttributeValue = Union[int, float, str, np.ndarray, list[int], list[float]]
#: A declared tensor shape: per axis its size, its symbolic name, or None when unknown.
Shape = tuple[Union[int, str, None], ...]

# TensorProto.DataType codes we read and their numpy types.
_TENSOR_DTYPES = {1: np.float32, 7: np.int64}
# AttributeProto.AttributeType codes.
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_TENSOR, _ATTR_FLOATS, _ATTR_INTS = 1, 2, 3, 4, 6, 7


class _Corrupt(Exception):
    """Raised inside the decoder; turned into a ValueError naming the file."""


@dataclass(frozen=True)
class Node:
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    domain: str = ""


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    initializers: dict[str, np.ndarray]
    inputs: tuple[str, ...]  # graph inputs that are not initializers
    outputs: tuple[str, ...]
    opset: int  # version of the default ("" / "ai.onnx") operator set
    # Declared shapes of the inputs and outputs (None: no shape declared), in order.
    input_shapes: tuple[Shape | None, ...] = ()
    output_shapes: tuple[Shape | None, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)  # the model's metadata_props


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of one protobuf message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise _Corrupt("truncated fixed-size field")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise _Corrupt("truncated length-delimited field")
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise _Corrupt(f"unsupported wire type {wire}")
        if number == 0:
            raise _Corrupt("field number 0")
        yield number, wire, value


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Corrupt("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _int_list(wire: int, value: int | bytes) -> list[int]:
    """A repeated int64 field occurrence: packed (wire 2) or a single varint."""
    if wire == 0:
        return [_signed(value)]  # type: ignore[arg-type]
    out, pos = [], 0
    while pos < len(value):  # type: ignore[arg-type]
        item, pos = _varint(value, pos)  # type: ignore[arg-type]
        out.append(_signed(item))
    return out


def _float_list(wire: int, value: bytes) -> list[float]:
    if wire == 5 or len(value) % 4 == 0:
        return list(struct.unpack(f"<{len(value) // 4}f", value))
    raise _Corrupt("bad packed float field")


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise _Corrupt("expected a string field")
    return value.decode("utf-8")


def _tensor(buf: bytes) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    data_type, name, raw = 0, "", None
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            dims += _int_list(wire, value)
        elif number == 2:
            data_type = value  # type: ignore[assignment]
        elif number == 4:
            floats += _float_list(wire, value)  # type: ignore[arg-type]
        elif number == 7:
            ints += _int_list(wire, value)
        elif number == 8:
            name = _text(value)
        elif number == 9:
            raw = value
        elif number == 14 and value == 1:
            raise _Corrupt(f"tensor {name!r}: external data is not supported")
    if data_type not in _TENSOR_DTYPES:
        raise _Corrupt(f"tensor {name!r}: data type {data_type} is not supported (FLOAT, INT64)")
    dtype = np.dtype(_TENSOR_DTYPES[data_type]).newbyteorder("<")
    if raw is not None:
        array = np.frombuffer(raw, dtype=dtype)  # type: ignore[arg-type]
    else:
        array = np.asarray(floats if data_type == 1 else ints, dtype=dtype)
    if array.size != int(np.prod(dims, dtype=np.int64)):
        raise _Corrupt(f"tensor {name!r}: {array.size} values do not fill shape {dims}")
    # A writable copy in native byte order: frombuffer views the (read-only) file bytes.
    out = np.empty(dims, dtype=_TENSOR_DTYPES[data_type])
    out[...] = array.reshape(dims)
    return name, out


def _attribute(buf: bytes) -> tuple[str, AttributeValue]:
    name, kind = "", 0
    scalars: dict[int, int | bytes] = {}
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 20:
            kind = value  # type: ignore[assignment]
        elif number in (2, 3, 4, 5):
            scalars[number] = value
        elif number == 7:
            floats += _float_list(wire, value)  # type: ignore[arg-type]
        elif number == 8:
            ints += _int_list(wire, value)
    if kind == _ATTR_FLOAT:
        return name, struct.unpack("<f", scalars.get(2, b"\0\0\0\0"))[0]  # type: ignore[arg-type]
    if kind == _ATTR_INT:
        return name, _signed(scalars.get(3, 0))  # type: ignore[arg-type]
    if kind == _ATTR_STRING:
        return name, _text(scalars.get(4, b""))
    if kind == _ATTR_TENSOR and 5 in scalars:
        return name, _tensor(scalars[5])[1]  # type: ignore[arg-type]
    if kind == _ATTR_FLOATS:
        return name, floats
    if kind == _ATTR_INTS:
        return name, ints
    raise _Corrupt(f"attribute {name!r}: type {kind} is not supported")


def _node(buf: bytes) -> Node:
    inputs: list[str] = []
    outputs: list[str] = []
    op_type, domain = "", ""
    attributes: dict[str, AttributeValue] = {}
    for number, _, value in _fields(buf):
        if number == 1:
            inputs.append(_text(value))
        elif number == 2:
            outputs.append(_text(value))
        elif number == 4:
            op_type = _text(value)
        elif number == 7:
            domain = _text(value)
        elif number == 5:
            key, item = _attribute(value)  # type: ignore[arg-type]
            attributes[key] = item
    if not op_type:
        raise _Corrupt("node without op_type")
    return Node(op_type, tuple(inputs), tuple(outputs), attributes, domain)


def _message(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise _Corrupt("expected a message field")
    return value


def _value_info(buf: bytes) -> tuple[str, Shape | None]:
    """Name and declared tensor shape of a ValueInfoProto (TypeProto.tensor_type.shape)."""
    name, shape = "", None
    for number, _, value in _fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:  # TypeProto
            for type_number, _, tensor in _fields(_message(value)):
                if type_number != 1:  # tensor_type
                    continue
                for tensor_number, _, dims in _fields(_message(tensor)):
                    if tensor_number == 2:  # shape
                        shape = tuple(
                            _dimension(_message(dim))
                            for dim_number, _, dim in _fields(_message(dims))
                            if dim_number == 1
                        )
    return name, shape


def _dimension(buf: bytes) -> int | str | None:
    for number, _, value in _fields(buf):
        if number == 1:
            return _signed(value)  # type: ignore[arg-type]
        if number == 2:
            return _text(value)
    return None


def _graph(buf: bytes, opset: int, metadata: dict[str, str]) -> Graph:
    nodes: list[Node] = []
    initializers: dict[str, np.ndarray] = {}
    inputs: list[tuple[str, Shape | None]] = []
    outputs: list[tuple[str, Shape | None]] = []
    for number, _, value in _fields(buf):
        if number == 1:
            nodes.append(_node(value))  # type: ignore[arg-type]
        elif number == 5:
            key, tensor = _tensor(value)  # type: ignore[arg-type]
            initializers[key] = tensor
        elif number == 11:
            inputs.append(_value_info(value))  # type: ignore[arg-type]
        elif number == 12:
            outputs.append(_value_info(value))  # type: ignore[arg-type]
    inputs = [item for item in inputs if item[0] not in initializers]
    return Graph(
        tuple(nodes), initializers, tuple(name for name, _ in inputs),
        tuple(name for name, _ in outputs), opset, tuple(shape for _, shape in inputs),
        tuple(shape for _, shape in outputs), metadata,
    )


def parse_model(data: bytes) -> Graph:
    """Decode the bytes of an ONNX ModelProto; raises ValueError when they are not one."""
    try:
        graph_bytes, opset = None, 0
        metadata: dict[str, str] = {}
        for number, _, value in _fields(data):
            if number == 7:
                graph_bytes = value
            elif number == 8:
                fields = {n: v for n, _, v in _fields(value)}  # type: ignore[arg-type]
                if _text(fields.get(1, b"")) in ("", "ai.onnx"):
                    opset = int(fields.get(2, 0))
            elif number == 14:  # metadata_props: StringStringEntryProto key = 1, value = 2
                entry = {n: v for n, _, v in _fields(_message(value))}
                metadata[_text(entry.get(1, b""))] = _text(entry.get(2, b""))
        if not isinstance(graph_bytes, bytes):
            raise _Corrupt("no graph")
        graph = _graph(graph_bytes, opset, metadata)
    except (_Corrupt, UnicodeDecodeError, struct.error) as error:
        raise ValueError(f"not a valid ONNX model: {error}") from None
    if not graph.nodes or not graph.outputs:
        raise ValueError("not a valid ONNX model: the graph has no nodes or no outputs")
    return graph


def load_graph(path: str | os.PathLike[str]) -> Graph:
    """Read the ONNX file at ``path``; ValueError naming the file when it cannot be decoded."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return parse_model(data)
    except ValueError as error:
        raise ValueError(f"{os.fspath(path)}: {error}") from None
