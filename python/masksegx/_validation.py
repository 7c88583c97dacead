"""Argument checks for the public API: clear TypeError/ValueError naming the argument.

Public functions check their arguments once, with these helpers, and hand them to private
functions (``_name``) that trust their array arguments; internal callers such as the pipeline
call the private functions with arrays they made themselves, so an image is validated once on
its way through. Cheap checks of scalar settings stay in the private functions.
"""

from __future__ import annotations

import numpy as np

#: Largest image side any function accepts (matches the C++ limit).
MAX_SIDE = 1 << 15


def as_image(image: object, name: str = "image", *, channels: int | None = 3) -> np.ndarray:
    """Return ``image`` as a C-contiguous uint8 array of shape HxW (channels=0) or HxWxC.

    Non-contiguous or read-only views are copied; anything else that is not exactly a
    uint8 image raises, so a float image in [0, 1] is never silently misread.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(image).__name__}")
    if image.dtype != np.uint8:
        # Arrays are never converted (unlike files, see eval.datasets.read_image): a guess at
        # the range of a float or 16-bit image would silently change results.
        raise TypeError(f"{name}: expected dtype uint8, got {image.dtype}"
                        " (scale 16-bit or float images to 0..255 uint8 first)")
    if channels == 0:
        if image.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D (H, W) image, got shape {image.shape}")
    elif image.ndim != 3 or (channels is not None and image.shape[2] != channels):
        want = "(H, W, 3)" if channels == 3 else f"(H, W, {channels})"
        hint = " (convert grayscale or BGRA with cv2.cvtColor)" if channels == 3 else ""
        raise ValueError(f"{name}: expected shape {want}, got {image.shape}{hint}")
    check_size(image.shape[:2], name)
    return np.ascontiguousarray(image)


def check_size(shape: tuple[int, ...], name: str) -> None:
    h, w = int(shape[0]), int(shape[1])
    if h == 0 or w == 0:
        raise ValueError(f"{name}: image is empty (shape {h}x{w})")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise ValueError(f"{name}: image side exceeds {MAX_SIDE} pixels (shape {h}x{w})")


def as_mask(mask: object, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Return ``mask`` as a C-contiguous bool HxW array matching ``shape``."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(mask).__name__}")
    if mask.dtype != np.bool_:
        if mask.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected a bool (or integer 0/1) mask, got {mask.dtype}")
        mask = np.not_equal(mask, 0)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {mask.shape}")
    return np.ascontiguousarray(mask)


def as_float_map(values: object, name: str, *, ndim: int = 2) -> np.ndarray:
    """Return ``values`` as a finite, C-contiguous float32 array of the given rank whose first
    two axes are image sides."""
    out = as_float_array(values, name, ndim=ndim)
    if ndim >= 2:
        check_size(out.shape[:2], name)
    return out


def as_float_array(values: object, name: str, *, ndim: int) -> np.ndarray:
    """Return ``values`` as a finite, C-contiguous float32 array of the given rank (any size)."""
    if not isinstance(values, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(values).__name__}")
    if values.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a numeric array, got {values.dtype}")
    if values.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{name}: array is empty")
    out = np.ascontiguousarray(values, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return out


def check_threads(threads: object, name: str = "threads", *, minimum: int = 1) -> int:
    """An onnxruntime intra-op thread count: an integer (Python or numpy, not a bool; TypeError
    otherwise) of at least ``minimum`` (ValueError otherwise). ``minimum=0`` where 0 means
    onnxruntime's default."""
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(threads).__name__}")
    if threads < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {threads}")
    return int(threads)


def check_order(order: str) -> str:
    if order not in ("bgr", "rgb"):
        raise ValueError(f"order: expected 'bgr' or 'rgb', got {order!r}")
    return order


def as_numeric_points(points: object, name: str) -> np.ndarray:
    """``points`` as a numpy array of integers or floats (lists and tuples are converted)."""
    if isinstance(points, (list, tuple)):
        points = np.asarray(points)
    if not isinstance(points, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(points).__name__}")
    if points.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected numeric points, got {points.dtype}")
    return points


def as_points(points: object, name: str, count: int | None = None) -> np.ndarray:
    """Return ``points`` as a finite, C-contiguous float64 array of shape (count, 2) (x, y).

    Lists and tuples are converted; integer points are accepted.
    """
    points = as_numeric_points(points, name)
    if points.ndim != 2 or points.shape[1] != 2 or (count is not None and points.shape[0] != count):
        want = f"({count}, 2)" if count is not None else "(N, 2)"
        raise ValueError(f"{name}: expected shape {want}, got {points.shape}")
    if points.shape[0] == 0:
        raise ValueError(f"{name}: no points")
    out = np.ascontiguousarray(points, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return out


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x0, y0, x1, y1)`` (exclusive ends) of a bool HxW mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
