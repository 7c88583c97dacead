"""Segmentation datasets: image/mask pairing and evaluation.

The file readers live in :mod:`masksegx.io` and are re-exported here: :func:`read_image`,
:func:`read_mask` (its module docstring describes the two mask formats, ``MASK_VALUES``, and
the :class:`MaskValueWarning` of a label map read as a binary mask), :class:`DatasetError`,
``IMAGE_SUFFIXES``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from ..io import IMAGE_SUFFIXES, MASK_VALUES, DatasetError, MaskValueWarning, read_image, read_mask
from .metrics import SegmentationScores

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_STEM_SUFFIX",
    "MASK_VALUES",
    "DatasetError",
    "MaskValueWarning",
    "Pairing",
    "evaluate_segmentation",
    "match_files",
    "pair_files",
    "read_image",
    "read_mask",
]

#: Suffix some datasets append to a mask's file stem (``cwm_03042.jpg`` -> ``cwm_03042_gt.png``).
MASK_STEM_SUFFIX = "_gt"


def _files_by_stem(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{role} directory not found: {str(folder)!r}")
    return {
        p.stem: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    }


class Pairing(NamedTuple):
    """Images paired with their masks, and the files of either folder left without a partner."""

    pairs: list[tuple[Path, Path]]
    images_without_mask: list[Path]
    masks_without_image: list[Path]


def match_files(images_dir: str | os.PathLike[str], masks_dir: str | os.PathLike[str]) -> Pairing:
    """Pair every image with its mask by file stem (see :func:`pair_files`), and list what
    was left unpaired in each folder (sorted by name)."""
    images = _files_by_stem(Path(images_dir), "images")
    masks = _files_by_stem(Path(masks_dir), "masks")
    pairs = []
    lonely_images = []
    used: set[str] = set()
    for stem, image_path in images.items():
        found = [s for s in (stem, stem + MASK_STEM_SUFFIX) if s in masks]
        if len(found) > 1:
            raise DatasetError(
                f"image {str(image_path)!r} has two masks: {[str(masks[s]) for s in found]}"
            )
        if found:
            pairs.append((image_path, masks[found[0]]))
            used.add(found[0])
        else:
            lonely_images.append(image_path)
    lonely_masks = [path for stem, path in masks.items() if stem not in used]
    return Pairing(
        sorted(pairs, key=lambda pair: pair[0].name),
        sorted(lonely_images, key=lambda path: path.name),
        sorted(lonely_masks, key=lambda path: path.name),
    )


def pair_files(
    images_dir: str | os.PathLike[str], masks_dir: str | os.PathLike[str]
) -> list[tuple[Path, Path]]:
    """Pair every image with its mask by file stem, sorted by image file name.

    The mask of ``<stem>.<ext>`` is ``<stem>.<ext>`` or ``<stem>_gt.<ext>`` in ``masks_dir``
    (any suffix of ``IMAGE_SUFFIXES``, case-insensitive). Images without a mask are left out
    (:func:`match_files` lists them, and masks without an image); an image with two candidate
    masks raises DatasetError, as does a missing directory.
    """
    return match_files(images_dir, masks_dir).pairs


def evaluate_segmentation(
    pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
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
