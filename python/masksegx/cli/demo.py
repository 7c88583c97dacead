"""``masksegx demo``: ``segment`` on the bundled example photos."""

from __future__ import annotations

import argparse

from ..examples import EXAMPLES
from .segment import add_segmenter_arguments, segment_inputs

COMMAND = "demo"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand."""
    command = subparsers.add_parser(COMMAND, help="segment the bundled example photos")
    command.add_argument("-o", "--output", default="masksegx-demo", help="output folder")
    add_segmenter_arguments(command)


def run(args: argparse.Namespace) -> int:
    """Segment the example photos into ``args.output``; the exit code of ``segment``."""
    return segment_inputs([example.path for example in EXAMPLES], args)
