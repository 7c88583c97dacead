"""``masksegx eval-det``: score a face detector on Pascal VOC folders (AP at IoU 0.5, recall per
class)."""

from __future__ import annotations

import argparse

from ..eval.datasets import DatasetError
from ..eval.detection import FACEMASK_CLASSES, SPLITS, evaluate_detector, split_pairs, voc_pairs
from ..eval.reference_detectors import DetectorUnavailable, make_detector
from ..eval.report import write_json
from ._common import add_detector_arguments, check_output_file, format_table, positive_int, print_error

COMMAND = "eval-det"
#: Columns of the eval-det table (recall keys flattened as recall_<class>).
_COLUMNS = (
    ("n_images", "images", "{:d}"),
    ("ap50", "AP50", "{:.4f}"),
    ("ap50_min20", "AP50 min20", "{:.4f}"),
    *((f"recall_{name}", f"R {name}", "{:.4f}") for name in FACEMASK_CLASSES),
    ("precision", "precision", "{:.4f}"),
    ("precision_min20", "P min20", "{:.4f}"),
    ("ms_per_image", "ms/image", "{:.1f}"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-det`` subcommand."""
    command = subparsers.add_parser(
        COMMAND,
        help="score a face detector on Pascal VOC images + annotations",
        description="Score a face detector on images paired with Pascal VOC xml files by stem: "
        "VOC AP at IoU 0.5 over all boxes, the same with boxes narrower than 20 px ignored, "
        "recall per mask class, precision (detections overlapping a box), the same over "
        "detections at least 20 px wide. Prints a table, optionally writes JSON.",
    )
    command.add_argument("--images", required=True, help="folder of images")
    command.add_argument("--annotations", required=True, help="folder of Pascal VOC .xml files")
    command.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="val: images whose number ends in 1 (facemask validation split), train: the rest; "
        "ilc-val: names ending in 0 or 1 (det/ilc2021 validation split), ilc-train: the rest",
    )
    add_detector_arguments(command)
    command.add_argument("--limit", type=positive_int, metavar="N", help="use only the first N images")


def run(args: argparse.Namespace) -> int:
    """Score ``args.detector``, print the table and write ``args.json``; exit code 0 or 2."""
    check_output_file(args.json, "--json")
    try:
        pairs = split_pairs(voc_pairs(args.images, args.annotations), args.split)
        if not pairs:
            raise DatasetError(
                f"no image/annotation pairs ({args.split}) in {args.images!r} and "
                f"{args.annotations!r}"
            )
        if args.limit is not None:
            pairs = pairs[: args.limit]
        detector = make_detector(args.detector, args.models_dir)
        summary = evaluate_detector(pairs, detector)
    except (DatasetError, DetectorUnavailable) as err:
        print_error(COMMAND, err)
        return 2
    flat = {**summary, **{f"recall_{k}": v for k, v in summary["recall"].items()}}
    print(format_table(args.detector, flat, _COLUMNS, "detector"))
    if args.json:
        write_json(args.json, {"detector": args.detector, "split": args.split, **summary})
    return 0
