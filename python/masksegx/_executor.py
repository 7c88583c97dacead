"""Run small ONNX inference graphs (the MTCNN nets, the attribute net, MaskNet) on the masksegx
C++ kernels.

Supported operators: Conv (2-D, symmetric padding; depthwise and pointwise included; dilation
with stride 1), PRelu, Relu, MaxPool (2-D, no padding, ceil_mode 0 or 1), GlobalAveragePool,
Gemm, MatMul, Add, Sub, Mul, Softmax, LogSoftmax, Exp, Sigmoid, Resize (linear, on the two
spatial axes), Transpose, Reshape, Flatten, Identity, Cast (to float), and the shape arithmetic
a dynamic-batch export emits (Shape, Gather, Unsqueeze, Squeeze, Concat, Constant), evaluated
with numpy.

A Conv whose only reader is a PRelu with constant per-channel slopes, or a Relu (slope 0), runs
as one fused kernel; 1x1 Convs that read the same tensor (the P-net's box and face heads) run as
one, its output channels split back; Conv and MaxPool results go into per-thread buffers reused
from run to run (graph outputs are always fresh arrays).

Inside :func:`parallel_threads` a run uses up to that many threads (the C++ layers release the
GIL): a batch is split into parts run at once when the graph declares one batch axis for its
inputs and outputs. The results do not depend on the split. A large image on a fully
convolutional graph runs in row bands (:meth:`NativeNet._run_in_bands`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Callable, Optional

import numpy as np

from . import _core
from ._models import run_in_parallel
from ._onnx_graph import Graph, Node, load_graph
from ._validation import as_float_array

# What a builder is given: a node's constant inputs, None for those computed at run time.
Given = list[Optional[np.ndarray]]
# What a kernel is called with: the node's input values.
Values = list[np.ndarray]
Kernel = Callable[..., list[np.ndarray]]
# A kernel is called with the input values; a Conv or MaxPool kernel also takes `alloc`, which
# returns a float32 array of a given shape to write the result into (reused between runs).
Alloc = Callable[[tuple[int, ...]], np.ndarray]
# A builder reads a node (attributes, constant inputs) once and returns the kernel to call.
Builder = Callable[[Node, Given, int, bool], Kernel]
# One prepared node: kernel, input names, output names, inputs released after it, pooled output.
Step = tuple[Kernel, tuple[str, ...], tuple[str, ...], tuple[str, ...], bool]

_BUILDERS: dict[str, Builder] = {}


def _op(*names: str) -> Callable[[Builder], Builder]:
    def register(builder: Builder) -> Builder:
        for name in names:
            _BUILDERS[name] = builder
        return builder

    return register


class UnsupportedOperator(ValueError):
    pass


_PARALLEL = threading.local()
#: Input pixels per band of a large image run by a fully convolutional graph (see
#: :meth:`NativeNet._run_in_bands`): the P-net's layers on a band this large stay in L2; an
#: image of fewer than two bands runs whole.
BAND_PIXELS = 1 << 15


@contextlib.contextmanager
def parallel_threads(count: int) -> Iterator[None]:
    """Native nets run by this thread inside the block use up to ``count`` threads (the
    caller's and those of :func:`masksegx._models.run_in_parallel`'s shared pool)."""
    previous = getattr(_PARALLEL, "threads", 1)
    _PARALLEL.threads = count
    try:
        yield
    finally:
        _PARALLEL.threads = previous


def _parallel_threads() -> int:
    threads: int = getattr(_PARALLEL, "threads", 1)
    return threads


class NativeNet:
    """An ONNX graph executed with :mod:`masksegx.nn` kernels (GIL released in the layers).

    Immutable after construction, so one instance may serve several threads at once; each thread
    keeps its own output buffers for the large intermediate layers, reused from run to run
    (fresh arrays of a few megabytes would be mapped and page-faulted on every call).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        graph = load_graph(self.path)
        self.input_names: tuple[str, ...] = graph.inputs
        self.output_names: tuple[str, ...] = graph.outputs
        self.input_shapes = graph.input_shapes
        self.output_shapes = graph.output_shapes
        self.metadata = dict(graph.metadata)
        # One symbolic leading axis shared by every input and output: samples are independent.
        leading = {shape[0] if shape else None for shape in graph.input_shapes + graph.output_shapes}
        self._batch_axis = len(leading) == 1 and isinstance(next(iter(leading)), str)
        try:
            self._constants, self._steps, self._macs_per_output, self._rows = _compile(graph)
        except ValueError as error:
            raise type(error)(f"{self.path}: {error}") from None
        self._local = threading.local()

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Evaluate the graph; ``feed`` maps every input name to a float32 NCHW array."""
        threads = _parallel_threads()
        batch = min((np.shape(x)[0] for x in feed.values() if np.ndim(x)), default=0)
        if threads > 1 and self._batch_axis and batch > 1:
            bounds = np.linspace(0, batch, min(threads, batch) + 1).astype(int)
            parts = [{name: x[a:b] for name, x in feed.items()} for a, b in zip(bounds, bounds[1:])]
            results = run_in_parallel(threads, self._run_whole, parts)
            return {name: np.concatenate([r[name] for r in results]) for name in self.output_names}
        if self._rows is not None and len(feed) == 1:
            x = next(iter(feed.values()))
            if np.ndim(x) == 4 and x.shape[0] == 1 and x.shape[2] * x.shape[3] >= 2 * BAND_PIXELS:
                return self._run_in_bands(x)
        return self._run_whole(feed)

    def _run_in_bands(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """A large single image run as bands of about :data:`BAND_PIXELS` pixels, each with
        the rows above and below that its outputs see, the outputs stacked back: every layer's
        output then stays in cache for the next. The same results, value for value."""
        stride, field = self._rows  # type: ignore[misc]  # set: the caller checked
        out_rows = (x.shape[2] - field) // stride + 1
        per_band = max(1, (BAND_PIXELS // x.shape[3] - field) // stride + 1)
        bands = [(a, min(a + per_band, out_rows)) for a in range(0, out_rows, per_band)]
        name = self.input_names[0]

        def band(rows: tuple[int, int]) -> dict[str, np.ndarray]:
            a, b = rows
            out = self._run_whole({name: x[:, :, a * stride : (b - 1) * stride + field]})
            return {key: value[:, :, : b - a] for key, value in out.items()}

        results = [band(rows) for rows in bands]
        return {key: np.concatenate([r[key] for r in results], axis=2) for key in self.output_names}

    def _run_whole(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._evaluate(feed)
        # An output may be a view (Reshape, Flatten) of a reused buffer: the caller gets a copy.
        return {
            name: values[name] if values[name].flags.owndata else values[name].copy()
            for name in self.output_names
        }

    def multiply_adds(self, feed: Mapping[str, np.ndarray]) -> int:
        """The multiply-adds of the Conv, Gemm and MatMul layers in one run on ``feed`` (the
        graph is run once to learn its shapes)."""
        total = 0

        def count(index: int, results: list[np.ndarray]) -> None:
            nonlocal total
            total += self._macs_per_output[index] * int(results[0].size)

        self._evaluate(feed, count)
        return total

    def _evaluate(
        self,
        feed: Mapping[str, np.ndarray],
        observe: Callable[[int, list[np.ndarray]], None] | None = None,
    ) -> dict[str, np.ndarray]:
        values = dict(self._constants)
        for name in self.input_names:
            if name not in feed:
                raise ValueError(f"{self.path}: missing input {name!r}")
            values[name] = as_float_array(feed[name], name, ndim=np.ndim(feed[name]))
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = [None] * len(self._steps)
        for index, (kernel, inputs, outputs, released, pooled) in enumerate(self._steps):
            args = [values[name] if name else None for name in inputs]
            if pooled:
                results = kernel(args, lambda shape, i=index: _buffer(buffers, i, shape))
            else:
                results = kernel(args)
            if observe is not None:
                observe(index, results)
            values.update(zip(outputs, results))
            for name in released:  # free intermediates after their last use
                del values[name]
        return values

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run a single-input net on ``x``."""
        if len(self.input_names) != 1:
            count = len(self.input_names)
            raise ValueError(f"{self.path}: the graph has {count} inputs; use run()")
        return self.run({self.input_names[0]: x})


def _compile(
    graph: Graph,
) -> tuple[dict[str, np.ndarray], list[Step], list[int], tuple[int, int] | None]:
    """Order the nodes, fold those whose inputs are all constant and prepare the others; also
    the multiply-adds per output value of each prepared step (0 but for Conv, Gemm, MatMul)
    and the graph's :func:`_row_geometry`."""
    constants: dict[str, np.ndarray] = dict(graph.initializers)
    known = set(constants) | set(graph.inputs) | {""}
    pending: list[Node] = list(graph.nodes)
    ordered: list[Node] = []
    while pending:  # files are normally sorted already; this also rejects dangling inputs
        waiting = []
        for node in pending:
            if all(name in known for name in node.inputs):
                known.update(node.outputs)
                ordered.append(node)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            missing = sorted({n for node in waiting for n in node.inputs if n not in known})
            raise ValueError(f"node inputs never produced: {missing[:5]}")
        pending = waiting

    ordered = _fuse_conv_prelu(ordered, constants, graph.outputs)
    ordered = _merge_sibling_pointwise(ordered, constants)
    rows = _row_geometry(ordered, constants, graph)
    last_use: dict[str, int] = {}
    uses: dict[str, int] = {}
    for index, node in enumerate(ordered):
        for name in node.inputs:
            last_use[name] = index
            uses[name] = uses.get(name, 0) + 1

    steps: list[Step] = []
    macs_per_output: list[int] = []
    for index, node in enumerate(ordered):
        builder = _BUILDERS.get(node.op_type)
        if builder is None or node.domain not in ("", "ai.onnx"):
            raise UnsupportedOperator(f"unsupported ONNX operator {node.op_type!r}")
        given = [constants.get(name) for name in node.inputs]
        # The first input of a layer may be overwritten when nothing else reads it.
        first = node.inputs[0] if node.inputs else ""
        owned = uses.get(first) == 1 and not (
            first in constants or first in graph.inputs or first in graph.outputs
        )
        kernel = builder(node, given, graph.opset, owned)
        if all(name in constants or not name for name in node.inputs):
            constants.update(zip(node.outputs, kernel(given)))
            continue
        released = tuple(
            name
            for name in set(node.inputs)
            if name and last_use[name] == index and name not in constants
            and name not in graph.outputs
        )
        # Conv and MaxPool write into per-thread buffers, except for the graph's outputs (the
        # caller keeps those).
        pooled = node.op_type in _POOLED and not any(name in graph.outputs for name in node.outputs)
        steps.append((kernel, node.inputs, node.outputs, released, pooled))
        weight = given[1] if len(given) > 1 else None
        if node.op_type == "Conv" and weight is not None:
            macs_per_output.append(math.prod(weight.shape[1:]))
        elif node.op_type == "Gemm" and weight is not None:
            macs_per_output.append(weight.shape[1 if node.attributes.get("transB", 0) else 0])
        elif node.op_type == "MatMul" and weight is not None:
            macs_per_output.append(weight.shape[-2])
        else:
            macs_per_output.append(0)
    missing = [name for name in graph.outputs if name not in known]
    if missing:
        raise ValueError(f"graph outputs never produced: {missing}")
    return constants, steps, macs_per_output, rows


_FUSED_PRELU = "masksegx_fused_prelu"
_ZERO_SLOPE = np.zeros(1, np.float32)  # a Relu is a PReLU of slope 0
_POOLED = ("Conv", "MaxPool")


#: Results larger than this (floats; 32 MB) get a fresh array instead of a kept buffer, so a
#: very large image does not leave hundreds of megabytes behind in every thread.
MAX_KEPT_FLOATS = 8 << 20


# Operators that map every pixel on its own (the rows of their output are those of their input).
_PER_PIXEL = ("PRelu", "Relu", "Sigmoid", "Identity", "masksegx_split_channels")


def _row_geometry(
    nodes: Sequence[Node], constants: Mapping[str, np.ndarray], graph: Graph
) -> tuple[int, int] | None:
    """``(stride, field)`` when output row ``r`` of every graph output is computed from input
    rows ``[r * stride, r * stride + field)`` alone, by unpadded Convs and floor-mode MaxPools
    and per-pixel operators, Softmax over channels included (a fully convolutional graph such
    as the P-net); None for any other graph."""
    geometry: dict[str, tuple[int, int]] = {name: (1, 1) for name in graph.inputs}
    for node in nodes:
        sources = {geometry.get(name) for name in node.inputs if name and name not in constants}
        if not sources:
            continue  # folded into a constant
        if len(sources) != 1 or None in sources or node.domain not in ("", "ai.onnx"):
            return None
        stride, field = sources.pop()  # type: ignore[misc]  # None excluded above
        if node.op_type in ("Conv", "MaxPool"):
            weight = constants.get(node.inputs[1]) if node.op_type == "Conv" else None
            kernel = weight.shape[2] if weight is not None and weight.ndim == 4 else (
                _ints(node, "kernel_shape", [0])[0] if node.op_type == "MaxPool" else 0)
            if (not kernel or any(_ints(node, "pads", [0, 0, 0, 0]))
                    or _ints(node, "dilations", [1, 1])[0] != 1 or node.attributes.get("ceil_mode")
                    or node.attributes.get("auto_pad", "NOTSET") not in ("NOTSET", "")):
                return None
            step = _ints(node, "strides", [1, 1])[0]
            stride, field = stride * step, field + (kernel - 1) * stride
        elif node.op_type == "Softmax":
            if graph.opset < 13 or int(node.attributes.get("axis", -1)) != 1:  # type: ignore[arg-type]
                return None
        elif node.op_type not in _PER_PIXEL:
            return None
        geometry.update((name, (stride, field)) for name in node.outputs)
    found = {geometry.get(name) for name in graph.outputs}
    return found.pop() if len(found) == 1 and None not in found else None


def _buffer(buffers: list[np.ndarray | None], index: int, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of ``shape`` on the step's buffer, grown when too small."""
    size = math.prod(shape)
    if size > MAX_KEPT_FLOATS:
        return np.empty(shape, np.float32)
    buffer = buffers[index]
    if buffer is None or buffer.size < size:
        buffer = buffers[index] = np.empty(max(size, 1), np.float32)
    view: np.ndarray = buffer[:size].reshape(shape)
    return view


def _fuse_conv_prelu(
    nodes: list[Node], constants: dict[str, np.ndarray], outputs: Sequence[str]
) -> list[Node]:
    """Conv followed by a PRelu that alone reads it, with a constant per-channel (or scalar)
    slope, or by a Relu (slope 0), becomes one Conv node: the kernel applies the activation
    while the output is in registers."""
    readers: dict[str, int] = {}
    for node in nodes:
        for name in node.inputs:
            readers[name] = readers.get(name, 0) + 1
    producer = {node.outputs[0]: i for i, node in enumerate(nodes) if node.outputs}
    fused: dict[int, Node] = {}
    dropped = set()
    for index, node in enumerate(nodes):
        if node.op_type not in ("PRelu", "Relu") or node.domain not in ("", "ai.onnx"):
            continue
        source = node.inputs[0]
        conv_index = producer.get(source)
        slope: np.ndarray | None
        if node.op_type == "Relu":
            slope_name, slope = f"{node.outputs[0]}/{_FUSED_PRELU}/zero", _ZERO_SLOPE
        else:
            slope_name = node.inputs[1] if len(node.inputs) > 1 else ""
            slope = constants.get(slope_name)
        if conv_index is None or slope is None or readers.get(source) != 1 or source in outputs:
            continue
        conv = nodes[conv_index]
        weight = constants.get(conv.inputs[1]) if len(conv.inputs) > 1 else None
        if conv.op_type != "Conv" or len(conv.outputs) != 1 or weight is None or weight.ndim != 4:
            continue
        channels = weight.shape[0]
        # [M], [M, 1, 1] (PyTorch's export) or a scalar: one slope per output channel.
        if not (slope.size == 1 or (slope.size == channels and slope.shape[0] == channels
                                    and slope.ndim <= 3)):
            continue
        constants[slope_name] = slope
        inputs = tuple(conv.inputs) + ("",) * (3 - len(conv.inputs)) + (slope_name,)
        attributes = dict(conv.attributes, **{_FUSED_PRELU: 1})
        fused[conv_index] = Node("Conv", inputs, tuple(node.outputs), attributes, conv.domain)
        dropped.add(index)
    return [fused.get(i, node) for i, node in enumerate(nodes) if i not in dropped]


_SPLIT_CHANNELS = "masksegx_split_channels"


def _merge_sibling_pointwise(nodes: list[Node], constants: dict[str, np.ndarray]) -> list[Node]:
    """1x1 Convs (stride 1, no padding, one group, constant weights) that read the same tensor
    become one Conv with their weights stacked, followed by a split of its output channels into
    the original outputs: the input is read once instead of once per head (the P-net's two
    heads). A fused PReLU keeps its
    slopes; a head without one gets slope 1 (the identity)."""
    siblings: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        weight = constants.get(node.inputs[1]) if len(node.inputs) > 1 else None
        if (
            node.op_type == "Conv" and node.domain in ("", "ai.onnx") and len(node.outputs) == 1
            and weight is not None and weight.ndim == 4 and weight.shape[2:] == (1, 1)
            and int(node.attributes.get("group", 1)) == 1  # type: ignore[arg-type]
            and _ints(node, "strides", [1, 1]) == [1, 1]
            and not any(_ints(node, "pads", [0, 0, 0, 0]))
            and _ints(node, "dilations", [1, 1]) == [1, 1]
            and node.attributes.get("auto_pad", "NOTSET") in ("NOTSET", "")
            and all(name in constants for name in node.inputs[1:] if name)
        ):
            siblings.setdefault(node.inputs[0], []).append(index)
    replaced: dict[int, list[Node]] = {}
    dropped = set()
    for source, members in siblings.items():
        if len(members) < 2:
            continue
        convs = [nodes[i] for i in members]
        weights = [constants[conv.inputs[1]] for conv in convs]
        if len({w.shape[1] for w in weights}) != 1:
            continue
        sizes = [w.shape[0] for w in weights]
        stem = f"{source}/{_SPLIT_CHANNELS}"
        constants[f"{stem}/weight"] = np.concatenate(weights).astype(np.float32)
        constants[f"{stem}/bias"] = np.concatenate([
            constants[conv.inputs[2]].reshape(-1).astype(np.float32)
            if len(conv.inputs) > 2 and conv.inputs[2] else np.zeros(size, np.float32)
            for conv, size in zip(convs, sizes)
        ])
        inputs: tuple[str, ...] = (source, f"{stem}/weight", f"{stem}/bias")
        attributes: dict[str, object] = {}
        if any(conv.attributes.get(_FUSED_PRELU) for conv in convs):
            constants[f"{stem}/slope"] = np.concatenate([
                np.broadcast_to(constants[conv.inputs[3]].reshape(-1), (size,)).astype(np.float32)
                if conv.attributes.get(_FUSED_PRELU) else np.ones(size, np.float32)
                for conv, size in zip(convs, sizes)
            ])
            inputs += (f"{stem}/slope",)
            attributes[_FUSED_PRELU] = 1
        merged = Node("Conv", inputs, (f"{stem}/output",), attributes)  # type: ignore[arg-type]
        split = Node(
            _SPLIT_CHANNELS, (f"{stem}/output",), tuple(conv.outputs[0] for conv in convs),
            {"sizes": sizes},
        )
        # In place of the first head: every reader of a head's output comes after that head.
        replaced[members[0]] = [merged, split]
        dropped.update(members[1:])
    ordered: list[Node] = []
    for index, node in enumerate(nodes):
        if index not in dropped:
            ordered.extend(replaced.get(index, [node]))
    return ordered


def _ints(node: Node, name: str, default: Sequence[int]) -> list[int]:
    return [int(v) for v in node.attributes.get(name, default)]  # type: ignore[union-attr]


def _require(condition: bool, node: Node, what: str) -> None:
    if not condition:
        raise UnsupportedOperator(f"{node.op_type}: unsupported {what}")


def _constant_input(node: Node, given: Given, index: int, what: str) -> np.ndarray:
    """Input ``index`` of ``node``, which must be a constant (UnsupportedOperator ``what``)."""
    value = given[index]
    if value is None:
        raise UnsupportedOperator(f"{node.op_type}: unsupported {what}")
    return value


def _spatial_2d(node: Node, dilated: bool = False) -> tuple[tuple[int, int], tuple[int, int]]:
    """(stride, symmetric padding) of a 2-D Conv/MaxPool node; dilations other than 1 only
    where ``dilated`` (the caller reads them)."""
    pads = _ints(node, "pads", [0, 0, 0, 0])
    strides = _ints(node, "strides", [1, 1])
    dilations = _ints(node, "dilations", [1, 1])
    _require(len(strides) == 2 and len(pads) == 4 and len(dilations) == 2, node, "rank (only 2-D)")
    _require(pads[0] == pads[2] and pads[1] == pads[3], node, f"asymmetric pads {pads}")
    _require(min(dilations) >= 1 and (dilated or dilations == [1, 1]), node, "dilations")
    _require(node.attributes.get("auto_pad", "NOTSET") in ("NOTSET", ""), node, "auto_pad")
    return (strides[0], strides[1]), (pads[0], pads[1])


@_op("Conv")
def _conv(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    stride, padding = _spatial_2d(node, dilated=True)
    dilation = tuple(_ints(node, "dilations", [1, 1]))
    groups = int(node.attributes.get("group", 1))  # type: ignore[arg-type]
    weight = _constant_input(node, given, 1, "non-constant or non-4-D weight")
    bias = given[2] if len(given) > 2 else None
    _require(weight.ndim == 4, node, "non-constant or non-4-D weight")
    weight = np.ascontiguousarray(weight, dtype=np.float32)
    bias = None if bias is None else np.ascontiguousarray(bias.reshape(-1), dtype=np.float32)
    slope = None
    if node.attributes.get(_FUSED_PRELU):  # see _fuse_conv_prelu
        slopes = _constant_input(node, given, 3, "non-constant slope").reshape(-1)
        slope = np.ascontiguousarray(np.broadcast_to(slopes, (weight.shape[0],)), dtype=np.float32)
    kh, kw = weight.shape[2:]
    if dilation != (1, 1):
        _require(stride == (1, 1), node, "dilations with strides")
        return _dilated_conv(weight, bias, padding, (dilation[0], dilation[1]), groups, slope)

    def conv(v: Values, alloc: Alloc | None = None) -> list[np.ndarray]:
        x = v[0]
        out = None
        if alloc is not None and x.ndim == 4:
            h = (x.shape[2] + 2 * padding[0] - kh) // stride[0] + 1
            w = (x.shape[3] + 2 * padding[1] - kw) // stride[1] + 1
            if h >= 1 and w >= 1:
                out = alloc((x.shape[0], weight.shape[0], h, w))
        return [_core.conv2d(x, weight, bias, stride, padding, groups, slope, out)]

    return conv


def _dilated_conv(
    weight: np.ndarray, bias: np.ndarray | None, padding: tuple[int, int],
    dilation: tuple[int, int], groups: int, slope: np.ndarray | None,
) -> Kernel:
    """A stride-1 convolution dilated by (dh, dw) as dh * dw plain ones: output rows and columns
    of the same phase modulo the dilation read only padded input rows and columns of that phase
    (MaskNet's context layer: a few small planes)."""
    kh, kw = weight.shape[2:]
    dh, dw = dilation

    def conv(v: Values, alloc: Alloc | None = None) -> list[np.ndarray]:
        x = v[0]
        padded = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
        h = padded.shape[2] - dh * (kh - 1)
        w = padded.shape[3] - dw * (kw - 1)
        if h < 1 or w < 1:
            raise ValueError(f"Conv: dilated kernel larger than the padded input {padded.shape}")
        n = x.shape[0]
        out = np.empty((n, weight.shape[0], h, w), np.float32)
        if h % dh == 0 and w % dw == 0:  # phases of one shape: one call on them all
            phases = padded.reshape(n, x.shape[1], -1, dh, padded.shape[3] // dw, dw)
            batch = np.ascontiguousarray(phases.transpose(3, 5, 0, 1, 2, 4)).reshape(
                dh * dw * n, x.shape[1], padded.shape[2] // dh, padded.shape[3] // dw
            )
            result = _core.conv2d(batch, weight, bias, (1, 1), (0, 0), groups, slope)
            out.reshape(n, -1, h // dh, dh, w // dw, dw)[...] = result.reshape(
                dh, dw, n, -1, h // dh, w // dw
            ).transpose(2, 3, 4, 0, 5, 1)
            return [out]
        for a in range(min(dh, h)):
            for b in range(min(dw, w)):
                phase = np.ascontiguousarray(padded[:, :, a::dh, b::dw])
                out[:, :, a::dh, b::dw] = _core.conv2d(
                    phase, weight, bias, (1, 1), (0, 0), groups, slope
                )
        return [out]

    return conv


@_op("MaxPool")
def _max_pool(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    stride, padding = _spatial_2d(node)
    _require(padding == (0, 0), node, "padding")
    _require(len(node.outputs) == 1 and not node.attributes.get("storage_order"), node, "indices")
    kernel_shape = _ints(node, "kernel_shape", [])
    _require(len(kernel_shape) == 2, node, "kernel_shape")
    kernel = (kernel_shape[0], kernel_shape[1])
    if node.attributes.get("ceil_mode", 0):

        def ceil_mode(v: Values, alloc: Alloc | None = None) -> list[np.ndarray]:
            x, out = v[0], None
            if alloc is not None and x.ndim == 4 and all(x.shape[2 + i] >= kernel[i] for i in (0, 1)):
                # Windows that start inside the input (as masksegx.nn.max_pool2d counts them).
                h, w = (-(-(x.shape[2 + i] - kernel[i]) // stride[i]) + 1 for i in (0, 1))
                h -= (h - 1) * stride[0] >= x.shape[2]
                w -= (w - 1) * stride[1] >= x.shape[3]
                out = alloc((x.shape[0], x.shape[1], h, w))
            return [_core.max_pool2d(x, kernel, stride, out)]

        return ceil_mode

    def floor_mode(v: Values, alloc: Alloc | None = None) -> list[np.ndarray]:
        # Ceil-mode windows start where floor-mode ones do; floor mode only drops the last one
        # (none when the windows tile the input, as 2x2 windows of even sides do).
        x = v[0]
        h, w = ((x.shape[2 + i] - kernel[i]) // stride[i] + 1 for i in (0, 1))
        if alloc is not None and x.ndim == 4 and all(
            (x.shape[2 + i] - kernel[i]) % stride[i] == 0 for i in (0, 1)
        ):
            return [_core.max_pool2d(x, kernel, stride, alloc((x.shape[0], x.shape[1], h, w)))]
        return [np.ascontiguousarray(_core.max_pool2d(x, kernel, stride)[:, :, :h, :w])]

    return floor_mode


@_op(_SPLIT_CHANNELS)
def _split_channels(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    _require("sizes" in node.attributes, node, "use (an internal operator)")
    bounds = np.cumsum([0, *_ints(node, "sizes", [])])

    def split(v: Values) -> list[np.ndarray]:
        # Contiguous views when the batch is 1 (the P-net); copies otherwise.
        return [np.ascontiguousarray(v[0][:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    return split


@_op("PRelu")
def _prelu(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    slope = _constant_input(node, given, 1, "non-constant slope")
    flat = np.ascontiguousarray(slope.reshape(-1), dtype=np.float32)

    def prelu(v: Values) -> list[np.ndarray]:
        x = v[0]
        # Per channel: a scalar, or [C, 1, ...] broadcast against [N, C, ...] (as PyTorch exports).
        if flat.size == 1:
            return [_core.prelu(x, np.full(x.shape[1], flat[0], np.float32), owned)]
        if slope.ndim == x.ndim - 1 and slope.shape[0] == x.shape[1] == flat.size:
            return [_core.prelu(x, flat, owned)]
        return [np.where(x > 0, x, x * slope).astype(np.float32)]

    return prelu


@_op("Relu")
def _relu(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    return lambda v: [_core.relu(v[0], owned)]


@_op("Gemm")
def _gemm(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    attrs = node.attributes
    _require(not attrs.get("transA", 0), node, "transA")
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))  # type: ignore
    weight = _constant_input(node, given, 1, "non-constant weight")
    bias = given[2] if len(given) > 2 else None
    _require(weight.ndim == 2, node, "non-constant weight")
    weight = weight if attrs.get("transB", 0) else weight.T  # to [M, K]
    weight = np.ascontiguousarray(weight * alpha, dtype=np.float32)
    if bias is not None:
        _require(bias.size in (1, weight.shape[0]), node, f"bias shape {bias.shape}")
        bias = np.ascontiguousarray(
            np.broadcast_to(bias.reshape(-1) * beta, (weight.shape[0],)), dtype=np.float32
        )
    return lambda v: [_core.fully_connected(np.ascontiguousarray(v[0]), weight, bias)]


@_op("MatMul")
def _matmul(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    matrix = given[1]
    if matrix is not None and matrix.ndim == 2:
        weight = np.ascontiguousarray(matrix.T, dtype=np.float32)

        def fully_connected(v: Values) -> list[np.ndarray]:
            if v[0].ndim != 2:
                return [np.matmul(v[0], matrix).astype(np.float32)]
            return [_core.fully_connected(np.ascontiguousarray(v[0]), weight, None)]

        return fully_connected
    return lambda v: [np.matmul(v[0], v[1]).astype(np.float32)]


@_op("Add")
def _add(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    return lambda v: [np.add(v[0], v[1])]


@_op("Sub")
def _sub(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    return lambda v: [np.subtract(v[0], v[1])]


@_op("Mul")
def _mul(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    return lambda v: [np.multiply(v[0], v[1])]


@_op("Exp")
def _exp(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    return lambda v: [np.exp(v[0])]


@_op("Sigmoid")
def _sigmoid(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    def sigmoid(v: Values) -> list[np.ndarray]:
        # From exp(-|x|) <= 1 only: no overflow for large |x|.
        x = v[0]
        small = np.exp(-np.abs(x))
        big = np.float32(1) / (np.float32(1) + small)
        return [np.where(x >= 0, big, small * big).astype(np.float32)]

    return sigmoid


@_op("GlobalAveragePool")
def _global_average_pool(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    return lambda v: [v[0].mean(axis=tuple(range(2, v[0].ndim)), keepdims=True, dtype=np.float32)]


@_op("Cast")
def _cast(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    _require(node.attributes.get("to") == 1, node, "target type (only FLOAT)")
    return lambda v: [np.asarray(v[0], np.float32)]


@_op("LogSoftmax")
def _log_softmax(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    axis = int(node.attributes.get("axis", -1 if opset >= 13 else 1))  # type: ignore[arg-type]
    _require(opset >= 13 or axis in (-1,), node, "axis before opset 13 (only the last)")

    def log_softmax(v: Values) -> list[np.ndarray]:
        shifted = v[0] - v[0].max(axis=axis, keepdims=True)
        return [shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))]

    return log_softmax


_RESIZE_COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


@_op("Resize")
def _resize(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    """Linear resizing of the last two axes (the leading ones kept), from constant scales or
    sizes; source coordinates clamped to the input as onnxruntime does."""
    attrs = node.attributes
    mode = attrs.get("mode", "nearest")
    coordinates = attrs.get("coordinate_transformation_mode", "half_pixel" if opset >= 11 else "asymmetric")
    _require(mode == "linear", node, f"mode {mode!r} (only linear)")
    _require(coordinates in _RESIZE_COORDINATES, node, f"coordinate mode {coordinates!r}")
    _require(not attrs.get("antialias", 0) and "axes" not in attrs, node, "antialias or axes")
    inputs = [given[i] if i < len(given) else None for i in range(4)]
    scales = inputs[1] if opset < 11 else inputs[2]
    sizes = None if opset < 11 else inputs[3]
    scales = scales if scales is not None and scales.size else None
    sizes = sizes if sizes is not None and sizes.size else None
    _require(scales is not None or sizes is not None, node, "non-constant scales and sizes")
    leading = scales[:-2] if scales is not None else None
    _require(leading is None or bool(np.all(leading == 1)), node, "scaling beyond the last two axes")

    def axis_weights(size: int, out_size: int, scale: float) -> tuple[np.ndarray, ...]:
        out = np.arange(out_size, dtype=np.float64)
        if coordinates == "align_corners":
            source = out * (size - 1) / (out_size - 1) if out_size > 1 else np.zeros(1)
        elif coordinates == "asymmetric":
            source = out / scale
        elif coordinates == "pytorch_half_pixel" and out_size == 1:
            source = np.zeros(1)
        else:
            source = (out + 0.5) / scale - 0.5
        source = np.clip(source, 0, size - 1)
        low = np.floor(source).astype(np.intp)
        high = np.minimum(low + 1, size - 1)
        frac = (source - low).astype(np.float32)
        return low, high, frac

    doubling = (
        scales is not None and len(scales) == 4 and list(scales[2:]) == [2, 2]
        and coordinates in ("half_pixel", "pytorch_half_pixel")
    )

    def resize(v: Values) -> list[np.ndarray]:
        x = v[0]
        if doubling and x.ndim == 4:  # the U-Net decoder's upsampling: one C++ pass
            return [_core.upsample_linear2x(x)]
        _require(x.ndim >= 2 and (sizes is None or len(sizes) == x.ndim), node, "rank")
        out = x
        for axis in (-2, -1):
            size = x.shape[axis]
            if sizes is not None:
                out_size = int(sizes[axis])
                scale = out_size / size
            else:
                scale = float(scales[axis])  # type: ignore[index]
                out_size = int(math.floor(size * scale))
            low, high, frac = axis_weights(size, out_size, scale)
            shape = [1] * out.ndim
            shape[axis] = out_size
            first = np.take(out, low, axis=axis)
            out = first + (np.take(out, high, axis=axis) - first) * frac.reshape(shape)
        return [np.ascontiguousarray(out, dtype=np.float32)]

    return resize


@_op("Softmax")
def _softmax(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    axis = int(node.attributes.get("axis", -1 if opset >= 13 else 1))  # type: ignore[arg-type]

    def softmax(v: Values) -> list[np.ndarray]:
        x = v[0]
        along = axis % x.ndim
        if opset >= 13 or along == x.ndim - 1:
            return [_core.softmax(np.ascontiguousarray(x), along)]
        # Before opset 13, Softmax flattened the axes from `axis` on into one.
        flat = np.ascontiguousarray(x.reshape(math.prod(x.shape[:along]), -1))
        return [_core.softmax(flat, 1).reshape(x.shape)]

    return softmax


@_op("Transpose")
def _transpose(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    perm = _ints(node, "perm", []) if "perm" in node.attributes else None
    return lambda v: [np.ascontiguousarray(np.transpose(v[0], perm))]


@_op("Reshape")
def _reshape(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    allow_zero = bool(node.attributes.get("allowzero", 0))

    def reshape(v: Values) -> list[np.ndarray]:
        x, shape = v[0], [int(d) for d in v[1]]
        if not allow_zero:  # 0 copies the input's dimension
            shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return [x.reshape(shape)]

    return reshape


@_op("Flatten")
def _flatten(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    axis = int(node.attributes.get("axis", 1))  # type: ignore[arg-type]
    return lambda v: [v[0].reshape(int(np.prod(v[0].shape[: axis % (v[0].ndim + 1)])), -1)]


@_op("Identity")
def _identity(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    return lambda v: [v[0]]


@_op("Constant")
def _constant(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    attrs = node.attributes
    if "value" in attrs:
        value = np.asarray(attrs["value"])
    elif "value_float" in attrs or "value_floats" in attrs:
        value = np.asarray(attrs.get("value_float", attrs.get("value_floats")), np.float32)
    elif "value_int" in attrs or "value_ints" in attrs:
        value = np.asarray(attrs.get("value_int", attrs.get("value_ints")), np.int64)
    else:
        raise UnsupportedOperator(f"Constant: unsupported attributes {sorted(attrs)}")
    return lambda v: [value]


@_op("Shape")
def _shape(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    start, end = node.attributes.get("start", 0), node.attributes.get("end")
    return lambda v: [np.asarray(v[0].shape[start:end], np.int64)]


@_op("Gather")
def _gather(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    axis = int(node.attributes.get("axis", 0))  # type: ignore[arg-type]
    return lambda v: [np.take(v[0], v[1], axis=axis)]


def _axes(node: Node, v: Sequence[np.ndarray | None], opset: int) -> list[int]:
    if opset >= 13 and len(v) > 1 and v[1] is not None:
        return [int(a) for a in np.ravel(v[1])]
    return _ints(node, "axes", [])


@_op("Unsqueeze")
def _unsqueeze(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    def unsqueeze(v: Values) -> list[np.ndarray]:
        rank = np.ndim(v[0]) + len(_axes(node, v, opset))
        return [np.expand_dims(v[0], tuple(sorted(a % rank for a in _axes(node, v, opset))))]

    return unsqueeze


@_op("Squeeze")
def _squeeze(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    def squeeze(v: Values) -> list[np.ndarray]:
        axes = _axes(node, v, opset)
        return [np.squeeze(v[0], tuple(a % np.ndim(v[0]) for a in axes) if axes else None)]

    return squeeze


@_op("Concat")
def _concat(node: Node, given: Given, opset: int, owned: bool) -> Kernel:
    axis = int(node.attributes.get("axis", 0))  # type: ignore[arg-type]
    return lambda v: [np.concatenate([np.atleast_1d(x) for x in v], axis=axis)]
