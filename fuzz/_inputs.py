"""Turns fuzz bytes into the arguments of masksegx functions: arrays of any dtype, rank and
small shape (sometimes non-contiguous or read-only, with NaN/inf among floats) and integer or
float parameters that favour the edges of their ranges."""

from __future__ import annotations

import numpy as np

DTYPES = (np.uint8, np.float32, np.float64, np.int32, np.int64, np.bool_, np.int8, np.uint16,
          np.complex64, object)
EDGE_INTS = (0, 1, 2, 3, 4, 5, 7, 8, -1, -2, 31, 255, 256, 65535, 65536, 2**31 - 1, 2**31,
             2**32, 2**63 - 1, -(2**63))
EDGE_FLOATS = (0.0, 1.0, -1.0, 0.5, 2.0, 6.0, 1e-38, 1e38, 3.5e38, float("nan"), float("inf"),
               float("-inf"), 1e300)
SPECIAL_FLOATS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e38, -1e38, 1e-45])


class Inputs:
    def __init__(self, fdp) -> None:
        self.fdp = fdp

    def choice(self, options):
        return options[self.fdp.ConsumeIntInRange(0, len(options) - 1)]

    def flag(self) -> bool:
        return self.fdp.ConsumeBool()

    def rank(self, low: int, high: int) -> int:
        return self.fdp.ConsumeIntInRange(low, high)

    def int(self, low: int = 0, high: int = 8):
        """Mostly a small int in [low, high]; sometimes an edge value or a wrong type."""
        pick = self.fdp.ConsumeIntInRange(0, 15)
        if pick < 11:
            return self.fdp.ConsumeIntInRange(low, high)
        if pick < 14:
            return self.choice(EDGE_INTS)
        return self.choice((1.5, float("inf"), None, "3", True, np.int64(3), (2, 2)))

    def float(self, low: float = 0.0, high: float = 8.0):
        pick = self.fdp.ConsumeIntInRange(0, 15)
        if pick < 10:
            return low + (high - low) * self.fdp.ConsumeProbability()
        if pick < 15:
            return self.choice(EDGE_FLOATS)
        return self.choice((None, "1.0", np.float32(2.0), [1.0]))

    def array(self, ndim: int, dtype=np.float32, *, max_side: int = 9, fixed=None):
        """An array that usually has ``ndim`` dims of ``dtype``; ``fixed`` maps axis -> size."""
        if self.fdp.ConsumeIntInRange(0, 9) == 0:
            ndim = self.fdp.ConsumeIntInRange(0, 5)
        if self.fdp.ConsumeIntInRange(0, 9) == 0:
            dtype = self.choice(DTYPES)
        shape = [self.fdp.ConsumeIntInRange(0 if self.fdp.ConsumeIntInRange(0, 15) == 0 else 1,
                                            max_side) for _ in range(ndim)]
        for axis, size in (fixed or {}).items():
            if axis < ndim and self.fdp.ConsumeIntInRange(0, 15):
                shape[axis] = size
        count = int(np.prod(shape)) if shape else 1
        raw = np.frombuffer(self.fdp.ConsumeBytes(count * 4).ljust(count * 4, b"\0"), np.uint8)
        if dtype is object:
            values = np.empty(count, object)
            values[:] = [None] * count
        elif np.dtype(dtype).kind == "f" or np.dtype(dtype).kind == "c":
            with np.errstate(invalid="ignore", over="ignore"):
                values = raw.view(np.float32)[:count].astype(dtype)
            if self.fdp.ConsumeIntInRange(0, 7) == 0 and count:
                values[self.fdp.ConsumeIntInRange(0, count - 1)] = self.choice(SPECIAL_FLOATS)
            values = np.nan_to_num(values, nan=0.5) if self.fdp.ConsumeBool() else values
        else:
            values = raw[:count].astype(dtype)
        values = values.reshape(shape)
        layout = self.fdp.ConsumeIntInRange(0, 7)
        if layout == 0 and values.ndim >= 1:  # strided view of the same shape
            values = np.repeat(values, 2, axis=-1)[..., ::2]
        elif layout == 1 and values.ndim >= 2:  # transposed (Fortran order)
            values = np.asfortranarray(values)
        elif layout == 2:
            values.flags.writeable = False
        return values
