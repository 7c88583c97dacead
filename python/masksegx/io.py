"""Reading image and mask files: the one place the package decodes files.

Files are converted, arrays passed to the API are not (:func:`masksegx._validation.as_image`):
:func:`read_image` turns grayscale into three equal channels, drops an alpha channel and scales
16-bit samples to 8 bits.

Every reader parses the file's header before decoding (:func:`image_header_size`: PNG, JPEG,
BMP, WebP, TIFF, GIF, PNM) and raises :class:`DatasetError` (a ValueError) naming the file for a
missing, empty, truncated, corrupt or non-image file, an image of another format, a side over
32768 pixels (``MAX_SIDE``, the limit of every kernel) or more pixels than ``max_pixels``
(default ``DEFAULT_MAX_PIXELS``, 200 million; ``None`` leaves only OpenCV's 2**30). A small
file can decode to gigabytes (a 1 MB PNG to 30000x30000), so the limit is checked on the
header, before anything is decoded.

A JPEG whose data is corrupt but decodable (libjpeg prints "Corrupt JPEG data: ..." and goes
on) is returned as decoded, and the decoder's message becomes a :class:`DamagedImageWarning`
naming the file (or goes to ``on_warning``): its pixels may be partly wrong. The message is
caught on file descriptor 2 while the JPEG is decoded, so JPEG decodes take turns.

Two mask formats are supported (``mask_value`` of :func:`read_mask`):

- ``255``: binary masks, the face mask is bright. Pixels > 127 count as mask, which tolerates
  masks that went through JPEG compression or resampling (``seg/real_dev``). A mask whose
  values are all 0, 1 or 2 (not all 0) is a label map read the wrong way: it reads as empty,
  with a :class:`MaskValueWarning`.
- ``2``: label maps (0 background, 1 skin, 2 face mask); only pixels equal to 2 count as mask
  (``seg/ffhq_synthmask``). The file must be single-channel so the labels are read as stored.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from typing import Optional, Union

import cv2
import numpy as np

from ._validation import check_size

PathLike = Union[str, "os.PathLike[str]"]
#: Receives each warning about a file (its message, naming the file).
WarningHandler = Optional[Callable[[str], object]]

#: File name suffixes (lower case) of the image files folders are searched for.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_VALUES = (255, 2)
#: Default ``max_pixels`` of the readers (and ``--max-pixels`` of the command line): above every
#: camera sensor (200 MP phones are 16320x12240), far below what exhausts memory.
DEFAULT_MAX_PIXELS = 200_000_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
_FORMATS = "PNG, JPEG, BMP, WebP, TIFF, GIF or PNM"
# fd 2 is one per process: one JPEG decode at a time may redirect it.
_STDERR_LOCK = threading.Lock()


class DatasetError(ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class DamagedImageWarning(UserWarning):
    """An image file decoded despite corrupt data (the decoder's message says what); some of
    its pixels may be wrong."""


class MaskValueWarning(UserWarning):
    """A mask file that looks like the other mask format (a 0/1/2 label map read as 0/255)."""


def read_image(
    path: PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, on_warning: WarningHandler = None
) -> np.ndarray:
    """Read a colour image as uint8 HxWx3 BGR (like ``cv2.imread``); DatasetError if unreadable.

    Grayscale becomes three equal channels, an alpha channel is dropped, 16-bit samples are
    scaled to 8 bits (divided by 256). Images over ``max_pixels`` pixels (width x height) are
    refused from their header, before decoding. A damaged but decodable JPEG is returned with a
    :class:`DamagedImageWarning`, or its message passed to ``on_warning`` instead. See the
    module docstring for the errors.
    """
    return _decode(path, cv2.IMREAD_COLOR, _checked_limit(max_pixels), on_warning)


def read_unchanged(
    path: PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, on_warning: WarningHandler = None
) -> np.ndarray:
    """Read an image file as stored (its channels, alpha included, and its bit depth); the
    limits and warnings of :func:`read_image`."""
    return _decode(path, cv2.IMREAD_UNCHANGED, _checked_limit(max_pixels), on_warning)


def read_mask(
    path: PathLike,
    mask_value: int,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    on_warning: WarningHandler = None,
) -> np.ndarray:
    """Read a ground-truth mask file as bool HxW (True = face mask); see the module docstring.

    With ``mask_value`` 255, a file holding only values 0, 1 and 2 gives a
    :class:`MaskValueWarning` (or a message to ``on_warning``): it is a label map, use 2.
    """
    limit = _checked_limit(max_pixels)
    if mask_value == 255:
        gray = _decode(path, cv2.IMREAD_GRAYSCALE, limit, on_warning)
        if 0 < int(gray.max()) <= 2:
            _warn(on_warning, MaskValueWarning,
                  f"mask file {os.fspath(path)!r} holds only values 0..2, a label map: read with "
                  f"mask value 255 it is empty (use mask value 2)")
        bright: np.ndarray = gray > 127
        return bright
    if mask_value == 2:
        labels = _decode(path, cv2.IMREAD_UNCHANGED, limit, on_warning)
        if labels.ndim != 2:
            raise DatasetError(
                f"label mask {os.fspath(path)!r} must be single-channel, got shape {labels.shape}"
            )
        masked: np.ndarray = labels == 2
        return masked
    raise ValueError(f"mask_value: expected one of {MASK_VALUES}, got {mask_value!r}")


def image_header_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a PNG, JPEG, BMP, WebP, TIFF, GIF or PNM file's
    bytes, without decoding; None for another format or a header too short or broken to say."""
    head = bytes(data[:32])
    if head.startswith(PNG_SIGNATURE):
        if len(head) < 24 or head[12:16] != b"IHDR":
            return None
        return _big(head, 16, 4), _big(head, 20, 4)
    if head.startswith(JPEG_SIGNATURE):
        return _jpeg_size(data)
    if head.startswith(b"BM") and len(head) >= 26:
        if _little(head, 14, 4) == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sides
            return _little(head, 18, 2), _little(head, 20, 2)
        height = int.from_bytes(head[22:26], "little", signed=True)  # negative: top-down rows
        return int.from_bytes(head[18:22], "little", signed=True), abs(height)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head[:4] in (b"II*\0", b"MM\0*"):
        return _tiff_size(data)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return _little(head, 6, 2), _little(head, 8, 2)
    if re.match(rb"P[1-6]\s", head):
        # width and height are the first two numbers after the magic; "#" starts a comment
        fields = re.sub(rb"#[^\n]*", b" ", bytes(data[2:1024])).split()
        if len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit():
            return int(fields[0]), int(fields[1])
    return None


def _big(data: bytes | memoryview, at: int, size: int) -> int:
    return int.from_bytes(data[at:at + size], "big")


def _little(data: bytes | memoryview, at: int, size: int) -> int:
    return int.from_bytes(data[at:at + size], "little")


def _jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """Walk the marker segments up to the first frame header (SOF0..SOF15)."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
        elif marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return None
            return _big(data, pos + 7, 2), _big(data, pos + 5, 2)
        else:
            pos += 2 + _big(data, pos + 2, 2)
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        return _little(head, 26, 2) & 0x3FFF, _little(head, 28, 2) & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = _little(head, 21, 4)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        return _little(head, 24, 3) + 1, _little(head, 27, 3) + 1
    return None


def _tiff_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of the first image file directory."""
    order = "little" if data[:2] == b"II" else "big"

    def number(at: int, size: int) -> int:
        return int.from_bytes(data[at:at + size], order)  # type: ignore[arg-type]

    directory = number(4, 4)
    if directory + 2 > len(data):
        return None
    sides: dict[int, int] = {}
    for entry in range(directory + 2, directory + 2 + 12 * number(directory, 2), 12):
        if entry + 12 > len(data):
            return None
        tag, kind = number(entry, 2), number(entry + 2, 2)
        if tag in (256, 257) and kind in (3, 4):  # SHORT or LONG
            sides[tag] = number(entry + 8, 2 if kind == 3 else 4)
    if len(sides) < 2:
        return None
    return sides[256], sides[257]


def _checked_limit(max_pixels: object) -> int | None:
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise TypeError(f"max_pixels: expected a positive int or None, got {type(max_pixels).__name__}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels: expected a positive int or None, got {max_pixels}")
    return int(max_pixels)


def _decode(path: PathLike, flags: int, max_pixels: int | None, on_warning: WarningHandler) -> np.ndarray:
    # np.fromfile + imdecode instead of cv2.imread: imread fails silently (returns None) and
    # cannot open non-ASCII paths on Windows.
    name = repr(os.fspath(path))
    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except OSError as err:
        raise DatasetError(f"cannot read image file {name}: {err.strerror or err}") from err
    if data[:8].tobytes() == PNG_SIGNATURE:
        _check_png_chunks(data, path)
    size = image_header_size(data.data)
    if size is None:
        raise DatasetError(
            f"cannot decode image file {name}: no {_FORMATS} header (empty, corrupt or not an image)"
        )
    width, height = size
    try:
        check_size((height, width), f"image file {name}")
    except ValueError as err:
        raise DatasetError(str(err)) from err
    if max_pixels is not None and width * height > max_pixels:
        raise DatasetError(
            f"image file {name} is {width}x{height} ({width * height} pixels), over the limit of "
            f"{max_pixels} pixels (max_pixels; --max-pixels on the command line)"
        )
    try:
        if data[:3].tobytes() == JPEG_SIGNATURE:
            image, message = _imdecode_catching_stderr(data, flags)
            if image is not None and message:
                _warn(on_warning, DamagedImageWarning,
                      f"image file {name} is damaged, decoded anyway: {message}")
        else:
            image = cv2.imdecode(data, flags)
    except cv2.error as err:
        # OpenCV checks the header's size before decoding (at most 2**30 pixels) and raises.
        raise DatasetError(f"cannot decode image file {name}: {_cv_message(err)}") from err
    if image is None:
        raise DatasetError(f"cannot decode image file {name} (truncated, corrupt or not an image)")
    try:
        check_size(image.shape, f"image file {name}")
    except ValueError as err:
        raise DatasetError(str(err)) from err
    return image


def _imdecode_catching_stderr(data: np.ndarray, flags: int) -> tuple[np.ndarray | None, str]:
    """``cv2.imdecode`` and what the decoder printed meanwhile: libjpeg reports recoverable
    corruption only as a line on stderr. Decodes without catching where fd 2 cannot be
    redirected (no stderr, or on Windows where the decoder may print through another C runtime
    than Python's, so the line still shows)."""
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return cv2.imdecode(data, flags), ""
        os.dup2(sink.fileno(), 2)
        try:
            image = cv2.imdecode(data, flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return image, sink.read().decode("utf-8", "replace").strip()


def _warn(on_warning: WarningHandler, category: type[Warning], message: str) -> None:
    if on_warning is None:
        warnings.warn(message, category, stacklevel=4)  # the caller of read_image / read_mask
    else:
        on_warning(message)


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
