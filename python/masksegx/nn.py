"""Neural-network layers for small CNN inference (the MTCNN detector's nets), in C++.

Tensors are float32 NCHW with batch N >= 1; weights use the ONNX layouts (Conv weight
``[M, C / groups, kh, kw]``, Gemm weight ``[M, K]`` with ``transB=1``), so ONNX initializers can
be passed unchanged. Inputs of another numeric dtype are converted to float32; NaN or infinity
raises ValueError.

The hot loops (pointwise/im2col GEMM, depthwise 3x3, fully connected dot products) use AVX-512
or AVX2+FMA on x86-64 CPUs that have them (chosen at run time; ``MASKSEGX_NO_AVX512=1`` stops
at AVX2) and NEON on aarch64; :func:`set_simd` or the environment variable
``MASKSEGX_FORCE_SCALAR=1`` selects the portable scalar code instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

from . import _core
from ._validation import as_float_array

IntPair = Union[int, tuple[int, int]]


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: IntPair = 1,
    padding: IntPair = 0,
    groups: int = 1,
    slope: np.ndarray | None = None,
) -> np.ndarray:
    """2-D convolution (cross-correlation, ONNX ``Conv``) of ``x`` [N, C, H, W].

    ``weight`` is [M, C / groups, kh, kw], ``bias`` [M] or None; ``padding`` adds zeros on both
    sides. Returns [N, M, (H + 2 ph - kh) // sh + 1, (W + 2 pw - kw) // sw + 1].
    ``slope`` [M]: PReLU fused into the convolution (``y if y > 0 else slope[m] * y``).
    Depthwise 3x3 (groups == C == M) and pointwise 1x1 layers take dedicated fast paths; batches
    of small output planes (under 256 pixels) run as one matrix product over the samples.
    """
    x = _as_tensor(x, "x", (4,))
    weight = _as_tensor(weight, "weight", (4,))
    bias = None if bias is None else _as_tensor(bias, "bias", (1,))
    slope = None if slope is None else _as_tensor(slope, "slope", (1,))
    return _core.conv2d(
        x,
        weight,
        bias,
        _pair(stride, "stride", minimum=1),
        _pair(padding, "padding", minimum=0),
        _int(groups, "groups", minimum=1),
        slope,
    )


def resize_area(image: np.ndarray, boxes: np.ndarray, size: IntPair) -> np.ndarray:
    """Area resampling of boxes of a planar image ``image`` [C, H, W] to ``size``
    (height, width, or one side for squares): [N, C, height, width] float32.

    ``boxes`` [N, 4] integer ``x0, y0, x1, y1`` (end exclusive, inside the image, not empty).
    Every output pixel is the mean of the input over its footprint, pixels partly inside
    weighted by the covered fraction: OpenCV's ``INTER_AREA`` when both sides shrink or both
    grow (OpenCV interpolates linearly when one side shrinks and the other grows).
    """
    image = _as_tensor(image, "image", (3,))
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] == 0:
        raise ValueError(f"boxes: expected shape (N, 4) with N >= 1, got {boxes.shape}")
    if not np.issubdtype(boxes.dtype, np.integer):
        raise TypeError(f"boxes: expected integers, got dtype {boxes.dtype}")
    return _core.resize_area_boxes(
        image, np.ascontiguousarray(boxes, np.int64), _pair(size, "size", minimum=1)
    )


def max_pool2d(x: np.ndarray, kernel: IntPair, stride: IntPair | None = None) -> np.ndarray:
    """Max pooling of ``x`` [N, C, H, W] in Caffe's ceil mode without padding (as MTCNN).

    Output side ``ceil((H - k) / s) + 1``, less one if the last window would start at or after
    ``H``; the last window is clipped to the input (ONNX ``MaxPool`` with ``ceil_mode=1``).
    ``stride`` defaults to ``kernel``. Requires ``H >= kh`` and ``W >= kw``.
    """
    kernel_pair = _pair(kernel, "kernel", minimum=1)
    stride_pair = kernel_pair if stride is None else _pair(stride, "stride", minimum=1)
    return _core.max_pool2d(_as_tensor(x, "x", (4,)), kernel_pair, stride_pair)


def prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Parametric ReLU ``x if x > 0 else slope[c] * x`` over axis 1 of a 2- to 4-D ``x``."""
    return _core.prelu(_as_tensor(x, "x", (2, 3, 4)), _as_tensor(slope, "slope", (1,)))


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` of a 1- to 4-D array, as a new float32 array."""
    return _core.relu(_as_tensor(x, "x", (1, 2, 3, 4)))


def fully_connected(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None
) -> np.ndarray:
    """``x @ weight.T + bias``: ``x`` [N, K], ``weight`` [M, K] (ONNX Gemm, transB=1) -> [N, M]."""
    x = _as_tensor(x, "x", (2,))
    weight = _as_tensor(weight, "weight", (2,))
    bias = None if bias is None else _as_tensor(bias, "bias", (1,))
    return _core.fully_connected(x, weight, bias)


def softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """Softmax of a 1- to 4-D array along ``axis`` (probabilities in [0, 1] summing to 1)."""
    return _core.softmax(_as_tensor(x, "x", (1, 2, 3, 4)), _int(axis, "axis"))


def simd_level() -> str:
    """The instruction set the kernels use now: ``"avx512"``, ``"avx2"``, ``"neon"`` or
    ``"scalar"``."""
    return _core.simd_level()


def set_simd(enabled: bool) -> None:
    """Enable (the default) or disable the SIMD paths, process-wide (for checks and timing)."""
    _core.set_simd(bool(enabled))


def _as_tensor(values: object, name: str, ndims: Sequence[int]) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.ndim not in ndims:
        want = " or ".join(str(d) for d in ndims)
        raise ValueError(f"{name}: expected {want} dimensions, got shape {values.shape}")
    return as_float_array(values, name, ndim=getattr(values, "ndim", ndims[0]))


def _int(value: object, name: str, *, minimum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be at least {minimum}, got {value}")
    return int(value)


def _pair(value: object, name: str, *, minimum: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
        return _int(value[0], name, minimum=minimum), _int(value[1], name, minimum=minimum)
    side = _int(value, name, minimum=minimum)
    return side, side
