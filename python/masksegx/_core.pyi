"""Type stubs for the compiled kernels (masksegx._core). Use the public wrappers instead."""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

# Private aliases: the module itself defines no such names (stubtest checks that).
_U8: TypeAlias = npt.NDArray[np.uint8]
_I32: TypeAlias = npt.NDArray[np.int32]
_I64: TypeAlias = npt.NDArray[np.int64]
_F32: TypeAlias = npt.NDArray[np.float32]
_F64: TypeAlias = npt.NDArray[np.float64]
_Mask: TypeAlias = npt.NDArray[np.bool_]

# --- color -----------------------------------------------------------------
def spectral_maps(
    image: _U8, order: str = "bgr", with_hsi: bool = True
) -> tuple[_F32 | None, _F32 | None, _F32 | None, _F32, _F32]: ...
def rgb_to_hsi(image: _U8, order: str = "bgr") -> _F32: ...

# --- compensate ------------------------------------------------------------
def blue_suppression(image: _U8, region: _Mask, mu: float = 0.8, order: str = "bgr") -> _U8: ...
def minkowski_illuminant(image: _U8, region: _Mask, t: float = 6.0, scale: float = 1.0) -> _F64: ...
def gray_world_minkowski(image: _U8, region: _Mask, t: float = 6.0) -> _U8: ...
def compensate_region(
    image: _U8, region: _Mask, mu: float = 0.8, t: float = 6.0, strength: float = 1.0, order: str = "bgr"
) -> tuple[_U8, _F64, _F64, _F64]: ...

# --- filters ---------------------------------------------------------------
def local_variance(values: _U8 | _F32, window: int = 5) -> _F32: ...

# --- regions ---------------------------------------------------------------
def label_components(mask: _Mask, connectivity: int = 8) -> tuple[_I32, int]: ...
def analyze_components(
    mask: _Mask, variance: _F32 | None = None, connectivity: int = 8
) -> tuple[_I32, _I64, _I32, _F64, _F64, _F64, _F64]: ...
def fill_holes(mask: _Mask) -> _Mask: ...

# --- fcm -------------------------------------------------------------------
def fuzzy_cmeans(
    features: _F32,
    k: int,
    m: float = 2.0,
    tol: float = 1e-4,
    max_iter: int = 100,
    seed: int = 0,
    init_centers: _F32 | None = None,
) -> tuple[_F32, _F32, int, float]: ...
def fcm_seed_centers(features: _F32, k: int, seed: int = 0) -> _F32: ...

# --- nn --------------------------------------------------------------------
def conv2d(
    x: _F32,
    weight: _F32,
    bias: _F32 | None = None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    groups: int = 1,
    slope: _F32 | None = None,
    out: _F32 | None = None,
) -> _F32: ...
def max_pool2d(
    x: _F32, kernel: tuple[int, int], stride: tuple[int, int], out: _F32 | None = None
) -> _F32: ...
def resize_area_boxes(
    image: _F32, boxes: _I64, size: tuple[int, int], out: _F32 | None = None
) -> _F32: ...
def resize_area_boxes_u8(
    image: _U8,
    boxes: _I64,
    size: tuple[int, int],
    reverse_channels: bool = False,
    scale: float = 1.0,
    offset: float = 0.0,
    out: _F32 | None = None,
) -> _F32: ...
def upsample_linear2x(x: _F32) -> _F32: ...
def prelu(x: _F32, slope: _F32, inplace: bool = False) -> _F32: ...
def relu(x: _F32, inplace: bool = False) -> _F32: ...
def fully_connected(x: _F32, weight: _F32, bias: _F32 | None = None) -> _F32: ...
def softmax(x: _F32, axis: int = 1) -> _F32: ...
def simd_level() -> str: ...
def set_simd(enabled: bool) -> None: ...

# --- nms -------------------------------------------------------------------
def nms(boxes: _F32, scores: _F32, iou_threshold: float, mode: str = "union") -> _I64: ...
