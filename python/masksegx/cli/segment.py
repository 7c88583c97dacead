"""``masksegx segment``: faces, attributes and worn-mask segmentation of images and videos."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

from ._common import positive_int, print_error

COMMAND = "segment"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``segment`` subcommand."""
    command = subparsers.add_parser(
        COMMAND,
        help="faces, attributes and worn-mask segmentation of images and videos",
        description="Find faces, read gender and mask coverage and segment the worn face mask. "
        "Per image (or video frame) writes <name>.json (faces, attributes, masks as COCO RLE), "
        "<name>_mask.png and <name>_overlay.jpg (to temporary files renamed into place, the JSON "
        "last). Unreadable, too large or damaged inputs and existing outputs are reported on "
        "stderr and the rest done (exit code 1). Earlier outputs in input folders and patterns "
        "are not read.",
    )
    command.add_argument("inputs", nargs="+", help="image or video files, folders, glob patterns")
    command.add_argument("-o", "--output", required=True, help="output folder")
    add_segmenter_arguments(command)
    command.add_argument(
        "--frame-step", type=positive_int, default=1, metavar="N",
        help="use every N-th frame of videos (default 1)",
    )


def run(args: argparse.Namespace) -> int:
    """Segment ``args.inputs``; exit code 0, 1 (some inputs failed) or 2 (bad settings)."""
    return segment_inputs(args.inputs, args, args.frame_step)


def add_segmenter_arguments(command: argparse.ArgumentParser) -> None:
    """The segmenter and parallelism options of ``segment`` and ``demo``."""
    from ..io import DEFAULT_MAX_PIXELS
    from ..pipeline import FACE_MODES, GENDER_CONSTRAINTS, METHODS

    command.add_argument("--method", choices=METHODS, default="fused", help="default: fused")
    command.add_argument(
        "--gender-constraint", choices=GENDER_CONSTRAINTS, default="none", help="default: none"
    )
    command.add_argument(
        "--faces", choices=FACE_MODES, default="detect",
        help="detect: run the face detector; whole-image: each image is one face crop",
    )
    command.add_argument(
        "--min-face-size", type=float, default=20.0, metavar="PX", help="default: 20"
    )
    command.add_argument(
        "--threads", type=positive_int, default=1, metavar="N",
        help="images processed at once on threads sharing one segmenter (default 1)",
    )
    command.add_argument(
        "--workers", type=positive_int, default=1, metavar="N",
        help="worker processes, each with its own segmenter, for large folders on many cores "
        "(default 1; not with --threads)",
    )
    command.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    command.add_argument(
        "--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS, metavar="N",
        help="refuse images (and video frames) of more than N pixels, checked on the file's "
        f"header before decoding (default {DEFAULT_MAX_PIXELS})",
    )
    command.add_argument(
        "--overwrite", action="store_true",
        help="replace output files already there (default: report that input and skip it)",
    )


def segment_inputs(inputs: Sequence[str], args: argparse.Namespace, frame_step: int = 1) -> int:
    """Run the batch segmenter configured by ``args`` on ``inputs``; returns the exit code: 1
    when an input failed or was damaged (a JPEG decoded despite corrupt data: segmented, its
    outputs written, a warning on stderr)."""
    from ..batch import expand_inputs, progress_stream, run_batch
    from ..pipeline import FaceMaskSegmenter

    make_segmenter = functools.partial(
        FaceMaskSegmenter,
        method=args.method,
        gender_constraint=args.gender_constraint,
        faces=args.faces,
        min_face_size=args.min_face_size,
    )
    sources, problems = expand_inputs(inputs)
    try:
        report = run_batch(
            sources, make_segmenter, args.output, threads=args.threads, workers=args.workers,
            frame_step=frame_step, progress=progress_stream(args.progress),
            max_pixels=args.max_pixels, overwrite=args.overwrite,
        )
    except (ValueError, OSError) as err:
        print_error(COMMAND, err)
        return 2
    for label, message in problems + report.failures:
        print(f"masksegx {COMMAND}: {label}: {message}", file=sys.stderr)
    for label, message in report.warnings:
        print(f"masksegx {COMMAND}: {label}: warning: {message}", file=sys.stderr)
    print(f"wrote {report.written} result(s) to {args.output}/")
    return 1 if problems or report.failures or report.warnings else 0
