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
    image: U8, region: Mask, mu: float = 0.8, t: float = 6.0, order: str = "bgr"
) -> Tuple[U8, F64, F64, F64]: ...

# --- filters ---------------------------------------------------------------
def local_variance(values: Union[U8, F32], window: int = 5) -> F32: ...

# --- regions ---------------------------------------------------------------

# --- fcm -------------------------------------------------------------------
