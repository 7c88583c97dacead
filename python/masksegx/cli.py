"""The ``masksegx`` command line.

Subcommands:

``eval-seg``  score a segmentation method on a folder of images and ground-truth masks::

    masksegx eval-seg --images data/images --masks data/masks --mask-value 255 --method fcm

Exit codes: 0 success, 2 bad arguments or unusable data (message on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from typing import Optional

from .eval.baselines import SEGMENTATION_METHODS, spectral
from .eval.compensations import COMPENSATION_METHODS
from .eval.datasets import MASK_VALUES, DatasetError, evaluate_segmentation, pair_files

#: Columns of the eval-seg table: (summary key, header, format).
_COLUMNS = (
    ("n_images", "images", "{:d}"),
    ("miou", "mIoU", "{:.4f}"),
    ("mask_iou", "mask IoU", "{:.4f}"),
    ("bg_iou", "bg IoU", "{:.4f}"),
    ("pacc", "pAcc", "{:.4f}"),
    ("mean_image_iou", "image IoU", "{:.4f}"),
    ("ms_per_image", "ms/image", "{:.1f}"),
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="masksegx", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    seg = commands.add_parser(
        "eval-seg",
        help="score a segmentation method on images + ground-truth masks",
        description="Score a segmentation method on image/mask pairs (paired by file stem; "
        "a mask may carry a _gt suffix). Prints a table, optionally writes JSON.",
    )
    seg.add_argument("--images", required=True, help="folder of images (.jpg/.jpeg/.png/.bmp)")
    seg.add_argument("--masks", required=True, help="folder of ground-truth masks")
    seg.add_argument(
        "--mask-value",
        type=int,
        required=True,
        choices=MASK_VALUES,
        help="255: binary masks, pixels > 127 are mask; 2: label maps, pixels == 2 are mask",
    )
    seg.add_argument("--method", required=True, choices=sorted(SEGMENTATION_METHODS))
    seg.add_argument(
        "--compensation",
        choices=sorted(COMPENSATION_METHODS),
        help="region compensation of the spectral pipeline (only with --method spectral)",
    )
    seg.add_argument("--json", metavar="OUT.json", help="also write the scores to this file")
    seg.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N pairs")
    return parser


def _format_table(method: str, summary: dict) -> str:
    headers = ["method"] + [header for _, header, _ in _COLUMNS]
    cells = [method] + [fmt.format(summary[key]) for key, _, fmt in _COLUMNS]
    widths = [max(len(h), len(c)) for h, c in zip(headers, cells)]
    return "\n".join(
        "  ".join(text.rjust(width) for text, width in zip(row, widths)) for row in (headers, cells)
    )


def _eval_seg(args: argparse.Namespace) -> int:
    segmenter = SEGMENTATION_METHODS[args.method]
    label = args.method
    if args.compensation is not None:
        segmenter = functools.partial(
            spectral, compensation=COMPENSATION_METHODS[args.compensation]
        )
        label = f"{args.method}+{args.compensation}"
    try:
        pairs = pair_files(args.images, args.masks)
        if not pairs:
            raise DatasetError(f"no image/mask pairs found in {args.images!r} and {args.masks!r}")
        if args.limit is not None:
            pairs = pairs[: args.limit]
        summary = evaluate_segmentation(
            pairs, lambda image: segmenter(image, None), args.mask_value
        )
    except DatasetError as err:
        print(f"masksegx eval-seg: error: {err}", file=sys.stderr)
        return 2
    print(_format_table(label, summary))
    if args.json:
        record = {"method": args.method, **summary}
        if args.compensation is not None:
            record["compensation"] = args.compensation
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(record, out, indent=2)
            out.write("\n")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "eval-seg":
        if args.compensation is not None and args.method != "spectral":
            parser.error("--compensation applies only to --method spectral")
        return _eval_seg(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects the rest
