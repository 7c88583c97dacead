"""Reading segmentation datasets: images, ground-truth masks, image/mask pairing, evaluation.

Two mask formats are supported (``mask_value``):

- ``255``: binary masks, the face mask is bright. Pixels > 127 count as mask, which tolerates
  masks that went through JPEG compression or resampling (``seg/real_dev``).
- ``2``: label maps (0 background, 1 skin, 2 face mask); only pixels equal to 2 count as mask
  (``seg/ffhq_synthmask``). The file must be single-channel so the labels are read as stored.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from collections.abc import Iterable
from typing import Callable

import cv2
import numpy as np

from .._validation import check_size
from .metrics import SegmentationScores

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MASK_VALUES = (255, 2)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Suffix some datasets append to a mask's file stem (``cwm_03042.jpg`` -> ``cwm_03042_gt.png``).
MASK_STEM_SUFFIX = "_gt"


class DatasetError(ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


def _decode(path: str | os.PathLike, flags: int) -> np.ndarray:
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


def _check_png_chunks(data: np.ndarray, path: str | os.PathLike) -> None:
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
        if raw[pos + 4:pos + 8] == b"IEND":
            return
        pos += 12 + length


def _cv_message(err: Exception) -> str:
    """The useful line of an OpenCV error ("... error: (-215:Assertion failed) pixels <= ...")."""
    text = str(err).strip()
    return text.split("error: ", 1)[-1] if "error: " in text else text


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a colour image as uint8 HxWx3 BGR (like ``cv2.imread``); DatasetError if unreadable.

    Files are converted, arrays passed to the API are not: grayscale becomes three equal
    channels, an alpha channel is dropped, 16-bit samples are scaled to 8 bits (divided by
    256). DatasetError (a ValueError) for an empty, truncated, corrupt or non-image file, a
    header claiming over 2**30 pixels (checked by OpenCV before decoding) or a side over
    32768 pixels (``MAX_SIDE``, the limit of every kernel).
    """
    return _decode(path, cv2.IMREAD_COLOR)


def read_mask(path: str | os.PathLike, mask_value: int) -> np.ndarray:
    """Read a ground-truth mask file as bool HxW (True = face mask); see the module docstring."""
    if mask_value == 255:
        return _decode(path, cv2.IMREAD_GRAYSCALE) > 127
    if mask_value == 2:
        labels = _decode(path, cv2.IMREAD_UNCHANGED)
        if labels.ndim != 2:
            raise DatasetError(
                f"label mask {os.fspath(path)!r} must be single-channel, got shape {labels.shape}"
            )
        return labels == 2
    raise ValueError(f"mask_value: expected one of {MASK_VALUES}, got {mask_value!r}")


def _files_by_stem(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{role} directory not found: {str(folder)!r}")
    return {
        p.stem: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    }


def pair_files(
    images_dir: str | os.PathLike, masks_dir: str | os.PathLike
) -> list[tuple[Path, Path]]:
    """Pair every image with its mask by file stem, sorted by image file name.

    The mask of ``<stem>.<ext>`` is ``<stem>.<ext>`` or ``<stem>_gt.<ext>`` in ``masks_dir``
    (any of .jpg/.jpeg/.png/.bmp, case-insensitive). Images without a mask are left out;
    an image with two candidate masks raises DatasetError, as does a missing directory.
    """
    images = _files_by_stem(Path(images_dir), "images")
    masks = _files_by_stem(Path(masks_dir), "masks")
    pairs = []
    for stem, image_path in images.items():
        found = [masks[s] for s in (stem, stem + MASK_STEM_SUFFIX) if s in masks]
        if len(found) > 1:
            raise DatasetError(
                f"image {str(image_path)!r} has two masks: {[str(p) for p in found]}"
            )
        if found:
            pairs.append((image_path, found[0]))
    return sorted(pairs, key=lambda pair: pair[0].name)


def evaluate_segmentation(
    pairs: Iterable[tuple[str | os.PathLike, str | os.PathLike]],
    segment_fn: Callable[[np.ndarray], np.ndarray],
    mask_value: int,
) -> dict[str, float | int]:
    """Score ``segment_fn`` (BGR uint8 HxWx3 image -> bool HxW mask) on image/mask pairs.

    Returns :meth:`SegmentationScores.summary` plus ``ms_per_image``: the mean wall time of
    ``segment_fn`` alone (reading files and scoring are not timed), in milliseconds.
    """
    scores = SegmentationScores()
    seconds = 0.0
    for image_path, mask_path in pairs:
        image = read_image(image_path)
        truth = read_mask(mask_path, mask_value)
        if truth.shape != image.shape[:2]:
            raise DatasetError(
                f"mask {str(mask_path)!r} is {truth.shape[1]}x{truth.shape[0]}, "
                f"image {str(image_path)!r} is {image.shape[1]}x{image.shape[0]}"
            )
        start = time.perf_counter()
        pred = segment_fn(image)
        seconds += time.perf_counter() - start
        scores.add(pred, truth)
    summary = scores.summary()
    summary["ms_per_image"] = 1000.0 * seconds / scores.n_images
    return summary
