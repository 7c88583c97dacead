"""Pieces the subcommands share: argument types, detector options, tables, JSON and errors."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from ..eval.reference_detectors import DETECTOR_NAMES

#: Table columns: (summary key, header, format).
Columns = Sequence[tuple[str, str, str]]


class UsageError(Exception):
    """Options that argparse accepts one by one but not together; ``main`` reports it as
    argparse does (usage line, ``masksegx: error: ...``, exit code 2)."""


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_detector_arguments(command: argparse.ArgumentParser) -> None:
    """``--detector``, ``--models-dir`` and ``--json`` of the detector scoring commands."""
    command.add_argument(
        "--detector",
        choices=DETECTOR_NAMES,
        default="mtcnn",
        help="mtcnn: the package's cascade; others: reference models in --models-dir",
    )
    command.add_argument("--models-dir", help="folder of the reference .onnx models")
    command.add_argument("--json", metavar="OUT.json", help="also write the scores to this file")


def format_table(label: str, summary: Mapping[str, object], columns: Columns, first: str) -> str:
    """A header row and one row of ``summary`` values, right-aligned; ``first`` heads ``label``."""
    headers = [first] + [header for _, header, _ in columns]
    cells = [label] + [fmt.format(summary[key]) for key, _, fmt in columns]
    widths = [max(len(h), len(c)) for h, c in zip(headers, cells)]
    return "\n".join(
        "  ".join(text.rjust(width) for text, width in zip(row, widths)) for row in (headers, cells)
    )


def check_output_file(path: str | None, option: str) -> None:
    """UsageError unless ``path`` (None: not asked for) can be written: run before the work,
    so that an hour of evaluation does not end in an unwritable path."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        problem = "it is a folder"
    elif not os.path.isdir(folder):
        problem = f"folder {folder!r} does not exist"
    elif not os.access(folder, os.W_OK | os.X_OK) or (
        os.path.exists(path) and not os.access(path, os.W_OK)
    ):
        problem = "permission denied"
    else:
        return
    raise UsageError(f"{option}: cannot write {path!r}: {problem}")


def print_error(command: str, error: object) -> None:
    """``masksegx <command>: error: <error>`` on stderr (bad data: exit code 2, no traceback)."""
    print(f"masksegx {command}: error: {error}", file=sys.stderr)
