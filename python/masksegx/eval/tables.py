"""Markdown tables: the one writer behind the tables of the model cards, ``docs/`` and the
evaluation tools (``tools/``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
