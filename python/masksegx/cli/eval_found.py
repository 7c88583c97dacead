"""``masksegx eval-found``: the share of images where a face detector finds at least one face,
on folders without boxes whose every image holds a face."""

from __future__ import annotations

import argparse

from ..eval.datasets import DatasetError
from ..eval.detection import evaluate_found, image_files
from ..eval.reference_detectors import DetectorUnavailable, make_detector
from ..eval.report import write_json
from ._common import add_detector_arguments, check_output_file, format_table, positive_int, print_error

COMMAND = "eval-found"
_COLUMNS = (
    ("n_images", "images", "{:d}"),
    ("n_found", "found", "{:d}"),
    ("found_rate", "found rate", "{:.4f}"),
    ("ms_per_image", "ms/image", "{:.1f}"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-found`` subcommand."""
    command = subparsers.add_parser(
        COMMAND,
        help="share of images (each holding a face) where a detector finds a face",
        description="Run a face detector on every image under a folder (sub-folders included, "
        "sorted by path) where each image holds at least one face; report the share of images "
        "with at least one detection. Prints a table, optionally writes JSON.",
    )
    command.add_argument("--images", required=True, help="folder of images (searched recursively)")
    command.add_argument(
        "--every",
        type=positive_int,
        default=1,
        metavar="N",
        help="only every N-th image in sorted order, from index N-1 (attr/utkface validation: 10)",
    )
    add_detector_arguments(command)
    command.add_argument("--limit", type=positive_int, metavar="N", help="use only the first N images")


def run(args: argparse.Namespace) -> int:
    """Score ``args.detector``, print the table and write ``args.json``; exit code 0 or 2."""
    check_output_file(args.json, "--json")
    try:
        images = image_files(args.images, args.every)[: args.limit]
        if not images:
            raise DatasetError(f"no images in {args.images!r}")
        detector = make_detector(args.detector, args.models_dir)
        summary = evaluate_found(images, detector)
    except (DatasetError, DetectorUnavailable) as err:
        print_error(COMMAND, err)
        return 2
    print(format_table(args.detector, summary, _COLUMNS, "detector"))
    if args.json:
        write_json(args.json, {"detector": args.detector, "images": args.images, **summary})
    return 0
