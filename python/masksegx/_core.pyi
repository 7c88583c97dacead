"""Type stubs for the compiled kernels (masksegx._core). Use the public wrappers instead."""

from typing import Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

# --- color -----------------------------------------------------------------
def spectral_maps(
    image: U8, order: str = "bgr", with_hsi: bool = True
) -> Tuple[Optional[F32], Optional[F32], Optional[F32], F32, F32]: ...
def rgb_to_hsi(image: U8, order: str = "bgr") -> F32: ...

# --- compensate ------------------------------------------------------------
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

def blue_suppression(image: U8, region: Mask, mu: float = 0.8, order: str = "bgr") -> U8: ...
def minkowski_illuminant(image: U8, region: Mask, t: float = 6.0, scale: float = 1.0) -> F64: ...
def gray_world_minkowski(image: U8, region: Mask, t: float = 6.0) -> U8: ...
def compensate_region(
    image: U8, region: Mask, mu: float = 0.8, t: float = 6.0, strength: float = 1.0, order: str = "bgr"
) -> Tuple[U8, F64, F64, F64]: ...

# --- filters ---------------------------------------------------------------
def local_variance(values: Union[U8, F32], window: int = 5) -> F32: ...

# --- regions ---------------------------------------------------------------
B = npt.NDArray[np.bool_]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
def label_components(mask: B, connectivity: int = 8) -> Tuple[I32, int]: ...
def analyze_components(
    mask: B, variance: Optional[F32] = None, connectivity: int = 8
) -> Tuple[I32, I64, I32, F64, F64, F64, F64]: ...
def fill_holes(mask: B) -> B: ...

# --- fcm -------------------------------------------------------------------
def fuzzy_cmeans(
    features: F32,
    k: int,
    m: float = 2.0,
    tol: float = 1e-4,
    max_iter: int = 100,
    seed: int = 0,
    init_centers: Optional[F32] = None,
) -> Tuple[F32, F32, int, float]: ...
def fcm_seed_centers(features: F32, k: int, seed: int = 0) -> F32: ...

# --- nn --------------------------------------------------------------------
def conv2d(
    x: F32,
    weight: F32,
    bias: Optional[F32] = None,
    stride: Tuple[int, int] = (1, 1),
    padding: Tuple[int, int] = (0, 0),
    groups: int = 1,
    slope: Optional[F32] = None,
    out: Optional[F32] = None,
) -> F32: ...
def max_pool2d(
    x: F32, kernel: Tuple[int, int], stride: Tuple[int, int], out: Optional[F32] = None
) -> F32: ...
def resize_area_boxes(
    image: F32, boxes: I64, size: Tuple[int, int], out: Optional[F32] = None
) -> F32: ...
def resize_area_boxes_u8(
    image: U8,
    boxes: I64,
    size: Tuple[int, int],
    reverse_channels: bool = False,
    scale: float = 1.0,
    offset: float = 0.0,
    out: Optional[F32] = None,
) -> F32: ...
def prelu(x: F32, slope: F32, inplace: bool = False) -> F32: ...
def relu(x: F32, inplace: bool = False) -> F32: ...
def fully_connected(x: F32, weight: F32, bias: Optional[F32] = None) -> F32: ...
def softmax(x: F32, axis: int = 1) -> F32: ...
def simd_level() -> str: ...
def set_simd(enabled: bool) -> None: ...

# --- nms -------------------------------------------------------------------
def nms(boxes: F32, scores: F32, iou_threshold: float, mode: str = "union") -> I64: ...
