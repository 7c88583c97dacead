"""COCO run-length encoding of binary masks (the compressed string form of pycocotools).

A mask is flattened in column-major (Fortran) order and stored as the lengths of alternating
runs of 0s and 1s, starting with 0s (a mask starting with a 1 begins with a zero-length run).
The counts are written as pycocotools' ``rleToString`` does: each count minus the count two
places before it (from the third on), in little-endian groups of 5 bits, 0x20 marking "more
groups follow", each group offset by 48 into printable ASCII. The result can be read by
``pycocotools.mask.decode({"size": [h, w], "counts": counts})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._validation import MAX_SIDE, as_mask

__all__ = ["encode", "decode"]


def encode(mask: np.ndarray) -> dict[str, Any]:
    """Encode a bool (or 0/1) HxW mask as ``{"size": [h, w], "counts": str}``."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise ValueError(f"mask: expected a 2-D (H, W) array, got {getattr(mask, 'shape', mask)!r}")
    mask = as_mask(mask, "mask", mask.shape)
    flat = mask.ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(edges).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _counts_to_string(counts)}


def decode(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode ``{"size": [h, w], "counts": str}`` back into a bool HxW mask."""
    try:
        height, width = (int(v) for v in rle["size"])
        text = rle["counts"]
    except (KeyError, TypeError, ValueError, OverflowError) as err:  # Overflow: int(inf)
        raise ValueError(f"rle: expected {{'size': [h, w], 'counts': str}}, got {rle!r}") from err
    if not isinstance(text, str) or height < 0 or width < 0:
        raise ValueError(f"rle: expected {{'size': [h, w], 'counts': str}}, got {rle!r}")
    if height > MAX_SIDE or width > MAX_SIDE:
        # Checked before decoding: seven characters of counts can claim 10**10 pixels.
        raise ValueError(f"rle: size {height}x{width} exceeds {MAX_SIDE} pixels per side")
    counts = _string_to_counts(text)
    if sum(counts) != height * width:
        raise ValueError(
            f"rle: counts add up to {sum(counts)} pixels, size says {height}x{width}"
        )
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape((height, width), order="F")


def _counts_to_string(counts: list[int]) -> str:
    chars = []
    for i, count in enumerate(counts):
        value = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            group = value & 0x1F
            value >>= 5  # arithmetic shift: negative deltas end at -1
            more = value != -1 if group & 0x10 else value != 0
            chars.append(chr(48 + (group | (0x20 if more else 0))))
    return "".join(chars)


def _string_to_counts(text: str) -> list[int]:
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise ValueError("rle: counts string ends inside a number")
            group = ord(text[pos]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"rle: invalid character {text[pos]!r} in counts")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise ValueError("rle: negative run length in counts")
        counts.append(value)
    return counts
