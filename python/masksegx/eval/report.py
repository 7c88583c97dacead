"""Report writers: the one markdown table writer behind the tables of the model cards,
``docs/`` and the evaluation tools (``tools/``), and the JSON writer of the evaluation records
(``masksegx eval-*  --json``, the attribute card's evaluations)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

Alignment = Literal["left", "right"]


def markdown_table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    align: Sequence[Alignment] | None = None,
) -> str:
    """A GitHub-flavoured markdown table: the header line, the separator line and one line per
    row, joined by newlines (no newline at the end). Cells are written with ``str``; ``align``
    gives each column's alignment (default: all left)."""
    if align is None:
        align = ["left"] * len(header)
    if len(align) != len(header):
        raise ValueError(f"align: expected {len(header)} entries, got {len(align)}")
    separator = ["---:" if side == "right" else "---" for side in align]
    lines = [_line(header), _line(separator)]
    lines += [_line([str(cell) for cell in row]) for row in rows]
    return "\n".join(lines)


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def write_json(path: str | os.PathLike[str], record: Mapping[str, object]) -> None:
    """Write ``record`` as indented JSON (to a temporary file renamed into place, replacing an
    earlier file)."""
    from ..batch import write_atomically

    # NaN (e.g. AP with no ground truth) is not JSON: write null.
    def clean(value: object) -> object:
        if isinstance(value, dict):
            return {key: clean(v) for key, v in value.items()}
        return None if isinstance(value, float) and math.isnan(value) else value

    text = json.dumps(clean(record), indent=2) + "\n"
    write_atomically([(os.fspath(path), text.encode("utf-8"))], overwrite=True)
