"""``masksegx eval-landmarks``: score a detector's 5 landmarks on a CUHK or MTFL list (NME)."""

from __future__ import annotations

import argparse

from ..eval.datasets import DatasetError
from ..eval.detection import evaluate_landmarks, read_cuhk, read_mtfl
from ..eval.reference_detectors import DetectorUnavailable, make_detector
from ..eval.report import write_json
from ._common import add_detector_arguments, check_output_file, format_table, positive_int, print_error

COMMAND = "eval-landmarks"
#: Columns of the eval-landmarks table.
_COLUMNS = (
    ("n_images", "images", "{:d}"),
    ("detected", "detected", "{:.4f}"),
    ("nme", "NME", "{:.4f}"),
)
_READERS = {"cuhk": read_cuhk, "mtfl": read_mtfl}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-landmarks`` subcommand."""
    command = subparsers.add_parser(
        COMMAND,
        help="score a detector's 5 landmarks on a CUHK or MTFL list",
        description="Mean point error over inter-ocular distance (NME) of the detection matching "
        "each annotated face, and the share of faces matched.",
    )
    command.add_argument("--annotations", required=True, help="annotation list file")
    command.add_argument("--images", required=True, help="folder the list's paths are relative to")
    command.add_argument("--format", required=True, choices=sorted(_READERS))
    add_detector_arguments(command)
    command.add_argument(
        "--limit", type=positive_int, metavar="N", help="use only the first N faces"
    )


def run(args: argparse.Namespace) -> int:
    """Score ``args.detector``'s landmarks, print the table and write ``args.json``; exit code
    0 or 2."""
    check_output_file(args.json, "--json")
    try:
        items = _READERS[args.format](args.annotations)
        if args.limit is not None:
            items = items[: args.limit]
        detector = make_detector(args.detector, args.models_dir)
        summary = evaluate_landmarks(items, args.images, detector)
    except (DatasetError, DetectorUnavailable) as err:
        print_error(COMMAND, err)
        return 2
    print(format_table(args.detector, summary, _COLUMNS, "detector"))
    if args.json:
        write_json(args.json, {"detector": args.detector, "format": args.format, **summary})
    return 0
