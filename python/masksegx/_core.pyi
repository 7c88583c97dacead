"""Type stubs for the compiled kernels (masksegx._core). Use the public wrappers instead."""

from typing import Optional, Tuple

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

# --- filters ---------------------------------------------------------------

# --- regions ---------------------------------------------------------------

# --- fcm -------------------------------------------------------------------
