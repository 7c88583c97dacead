"""Reading image and mask files: the one place the package decodes files.

Files are converted, arrays passed to the API are not (:func:`masksegx._validation.as_image`):
:func:`read_image` turns grayscale into three equal channels, drops an alpha channel and scales
16-bit samples to 8 bits. Every reader raises :class:`DatasetError` (a ValueError) for a missing,
empty, truncated, corrupt or non-image file, a header claiming over 2**30 pixels (checked by
OpenCV before decoding) or a side over 32768 pixels (``MAX_SIDE``, the limit of every kernel).

Two mask formats are supported (``mask_value`` of :func:`read_mask`):

- ``255``: binary masks, the face mask is bright. Pixels > 127 count as mask, which tolerates
  masks that went through JPEG compression or resampling (``seg/real_dev``).
- ``2``: label maps (0 background, 1 skin, 2 face mask); only pixels equal to 2 count as mask
  (``seg/ffhq_synthmask``). The file must be single-channel so the labels are read as stored.
"""

from __future__ import annotations

import os
from typing import Union

import cv2
import numpy as np

from ._validation import check_size

PathLike = Union[str, "os.PathLike[str]"]

#: File name suffixes (lower case) of the image files folders are searched for.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_VALUES = (255, 2)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class DatasetError(ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


def read_image(path: PathLike) -> np.ndarray:
    """Read a colour image as uint8 HxWx3 BGR (like ``cv2.imread``); DatasetError if unreadable.

    Grayscale becomes three equal channels, an alpha channel is dropped, 16-bit samples are
    scaled to 8 bits (divided by 256); see the module docstring for the errors.
    """
    return _decode(path, cv2.IMREAD_COLOR)


def read_unchanged(path: PathLike) -> np.ndarray:
    """Read an image file as stored (its channels, alpha included, and its bit depth)."""
    return _decode(path, cv2.IMREAD_UNCHANGED)


def read_mask(path: PathLike, mask_value: int) -> np.ndarray:
    """Read a ground-truth mask file as bool HxW (True = face mask); see the module docstring."""
    if mask_value == 255:
        bright: np.ndarray = _decode(path, cv2.IMREAD_GRAYSCALE) > 127
        return bright
    if mask_value == 2:
        labels = _decode(path, cv2.IMREAD_UNCHANGED)
        if labels.ndim != 2:
            raise DatasetError(
                f"label mask {os.fspath(path)!r} must be single-channel, got shape {labels.shape}"
            )
        masked: np.ndarray = labels == 2
        return masked
    raise ValueError(f"mask_value: expected one of {MASK_VALUES}, got {mask_value!r}")


def _decode(path: PathLike, flags: int) -> np.ndarray:
    # np.fromfile + imdecode instead of cv2.imread: imread fails silently (returns None) and
    # cannot open non-ASCII paths on Windows.
    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except OSError as err:
        raise DatasetError(
            f"cannot read image file {os.fspath(path)!r}: {err.strerror or err}"
        ) from err
    if data[:8].tobytes() == PNG_SIGNATURE:
        _check_png_chunks(data, path)
    try:
        image = cv2.imdecode(data, flags) if data.size else None
    except cv2.error as err:
        # OpenCV checks the header's size before decoding (at most 2**30 pixels) and raises.
        raise DatasetError(
            f"cannot decode image file {os.fspath(path)!r}: {_cv_message(err)}"
        ) from err
    if image is None:
        raise DatasetError(f"cannot decode image file {os.fspath(path)!r} (empty or not an image)")
    try:
        check_size(image.shape, f"image file {os.fspath(path)!r}")
    except ValueError as err:
        raise DatasetError(str(err)) from err
    return image


def _check_png_chunks(data: np.ndarray, path: PathLike) -> None:
    """OpenCV's PNG reader allocates a chunk's declared length before reading it, so a 90-byte
    file whose chunk claims 4 GB costs 4 GB (found by fuzz/fuzz_images.py). No chunk can be
    longer than the rest of the file: check that first."""
    raw = data.data
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(raw):
        length = int.from_bytes(raw[pos:pos + 4], "big")
        left = len(raw) - pos - 12  # after the length, type and CRC fields
        if length > left:
            raise DatasetError(
                f"cannot decode image file {os.fspath(path)!r}: PNG chunk at byte {pos} claims "
                f"{length} bytes, the file has {max(left, 0)} left (truncated or corrupt)"
            )
        if bytes(raw[pos + 4:pos + 8]) == b"IEND":
            return
        pos += 12 + length


def _cv_message(err: Exception) -> str:
    """The useful line of an OpenCV error ("... error: (-215:Assertion failed) pixels <= ...")."""
    text = str(err).strip()
    return text.split("error: ", 1)[-1] if "error: " in text else text
