"""Argument checks for the public API: clear TypeError/ValueError naming the argument.

Public functions check their arguments once, with these helpers, and hand them to private
functions (``_name``) that trust their array arguments; internal callers such as the pipeline
call the private functions with arrays they made themselves, so an image is validated once on
its way through. Cheap checks of scalar settings stay in the private functions.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np

T = TypeVar("T")

#: Largest image side any function accepts (matches the C++ limit).
MAX_SIDE = 1 << 15
#: Least reach of :func:`image_reach`, so a tiny crop still takes the landmarks of the face
#: around it (the canonical aligned face is 112 pixels).
MIN_REACH = 128
#: Largest box-filter window (``filters.local_variance``; matches the C++ limit).
MAX_WINDOW = 65535


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


def check_number(
    value: object,
    name: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A real number (Python or numpy int or float, not a bool; TypeError otherwise) in the
    interval from ``low`` to ``high`` (closed unless ``low_open`` / ``high_open``; ValueError
    otherwise, and always for NaN). Infinity passes only where the interval holds it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        number = math.inf if value > 0 else -math.inf
    above = low < number if low_open else low <= number
    below = number < high if high_open else number <= high
    if not (above and below):  # NaN fails both
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}: expected a value in {interval}, got {value!r}")
    return number


def check_finite(value: object, name: str) -> float:
    """A finite real number (:func:`check_number` without bounds but infinity)."""
    return check_number(value, name, low=-math.inf, low_open=True, high=math.inf, high_open=True)


def check_int(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (Python or numpy, not a bool; TypeError otherwise) in ``[low, high]``
    (ValueError otherwise; None: no bound)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if (low is not None and value < low) or (high is not None and value > high):
        interval = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"{name}: expected an integer in {interval}, got {value}")
    return int(value)


def check_odd_window(value: object, name: str) -> int:
    """An odd window side in ``[1, MAX_WINDOW]`` (the limit of the C++ box filters)."""
    window = check_int(value, name, low=1, high=MAX_WINDOW)
    if window % 2 == 0:
        raise ValueError(f"{name}: expected an odd size, got {window}")
    return window


def check_bool(value: object, name: str) -> bool:
    """True or False (numpy bools too); TypeError for anything else, 0 and 1 included."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


def check_instance(value: object, expected: type[T], name: str) -> T:
    """``value`` if it is an instance of ``expected``; TypeError naming both otherwise."""
    if not isinstance(value, expected):
        raise TypeError(f"{name}: expected {expected.__name__}, got {type(value).__name__}")
    return value


def settings_or_default(value: object, kind: type[T], name: str) -> T:
    """A settings object (a params dataclass): ``kind()`` for None, ``value`` if it is a
    ``kind``, TypeError otherwise (a dict of settings is not converted)."""
    return kind() if value is None else check_instance(value, kind, name)


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


def image_reach(shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """Where the box corners and landmarks of a face in an image of ``shape`` may lie:
    ``(x_min, y_min, x_max, y_max)``, the image widened beyond each border by its larger side,
    and by at least :data:`MIN_REACH` pixels. Faces at the border reach a little outside; a
    point further out belongs to no face of this image (another image's coordinates, or the
    wrong units)."""
    height, width = int(shape[0]), int(shape[1])
    reach = float(max(height, width, MIN_REACH))
    return -reach, -reach, width + reach, height + reach


def check_near_image(points: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    """ValueError when a point (x, y in the last axis) lies outside :func:`image_reach`."""
    if points.size == 0:
        return
    x_min, y_min, x_max, y_max = image_reach(shape)
    xs, ys = points[..., 0], points[..., 1]
    if xs.min() < x_min or xs.max() > x_max or ys.min() < y_min or ys.max() > y_max:
        raise ValueError(
            f"{name}: points lie more than the image's larger side (at least {MIN_REACH} px) "
            f"outside the {shape[1]}x{shape[0]} image (expected x in [{x_min:g}, {x_max:g}] "
            f"and y in [{y_min:g}, {y_max:g}])"
        )


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x0, y0, x1, y1)`` (exclusive ends) of a bool HxW mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
