"""Example photos shipped with the package (CC0, see NOTICE.md) and their annotated face boxes."""

from __future__ import annotations

import os
from typing import NamedTuple

_DATA = os.path.join(os.path.dirname(__file__), "data")


class Example(NamedTuple):
    path: str
    face_box: tuple[int, int, int, int]
    """(x0, y0, x1, y1) from the dataset's Pascal VOC annotation."""


EXAMPLES = (
    Example(os.path.join(_DATA, "example_blue_mask.jpg"), (154, 51, 423, 391)),
    Example(os.path.join(_DATA, "example_navy_mask.jpg"), (143, 39, 309, 257)),
)
