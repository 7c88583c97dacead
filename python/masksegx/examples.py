"""Example photos shipped with the package (CC0, see NOTICE.md) and their annotated face boxes.

:data:`EXAMPLES` hold one face each (close-ups); :data:`MULTI_FACE_EXAMPLE` is a 640x480 street
photo with three faces, the side-by-side speed benchmark's image."""

from __future__ import annotations

import os
from typing import NamedTuple

_DATA = os.path.join(os.path.dirname(__file__), "data")


class MultiFaceExample(NamedTuple):
    path: str
    face_boxes: tuple[tuple[int, int, int, int], ...]
    """(x0, y0, x1, y1) per face from the dataset's Pascal VOC annotation, scaled to the photo."""


class Example(NamedTuple):
    path: str
    face_box: tuple[int, int, int, int]
    """(x0, y0, x1, y1) from the dataset's Pascal VOC annotation."""


EXAMPLES = (
    Example(os.path.join(_DATA, "example_blue_mask.jpg"), (154, 51, 423, 391)),
    Example(os.path.join(_DATA, "example_navy_mask.jpg"), (143, 39, 309, 257)),
)

MULTI_FACE_EXAMPLE = MultiFaceExample(
    os.path.join(_DATA, "example_three_faces.jpg"),
    ((59, 94, 179, 215), (232, 182, 366, 328), (429, 25, 608, 212)),
)
