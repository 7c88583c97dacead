"""``masksegx spectral``: the spectral face-mask extraction on image files."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..eval.datasets import DatasetError, read_image
from ..spectral import Box, segment_spectral

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

COMMAND = "spectral"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``spectral`` subcommand."""
    command = subparsers.add_parser(
        COMMAND,
        help="spectral face-mask extraction on image files",
        description="Segment the worn face mask with the paper's spectral method. Each image is "
        "taken as a face crop unless --box gives the face box. Writes <stem>_mask.png (0/255) "
        "and <stem>_overlay.jpg per image.",
    )
    command.add_argument("images", nargs="+", help="image files")
    command.add_argument("--box", type=_box, help="face box x0,y0,x1,y1 in pixels (all images)")
    command.add_argument("-o", "--output", required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    """Segment each of ``args.images``; exit code 1 when some could not be read."""
    return 1 if _segment_files([(path, args.box) for path in args.images], args.output) else 0


def _box(text: str) -> Box:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected x0,y0,x1,y1 integers, got {text!r}")
    x0, y0, x1, y1 = values
    return x0, y0, x1, y1


def _overlay(image: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    """The image with the mask tinted green and its outline drawn."""
    import cv2
    import numpy as np

    out = image.copy()
    out[mask] = (0.5 * out[mask] + np.array([0, 110, 0])).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (0, 255, 0), 2)
    return out


def _segment_files(items: Iterable[tuple[str, Box | None]], output: str) -> int:
    """Segment (path, box) items into ``output``; returns the number of failures."""
    import cv2

    os.makedirs(output, exist_ok=True)
    failures = 0
    for path, box in items:
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            image = read_image(path)
            result = segment_spectral(image, region=box)
        except (DatasetError, ValueError) as err:
            print(f"masksegx: {path}: {err}", file=sys.stderr)
            failures += 1
            continue
        cv2.imwrite(os.path.join(output, f"{stem}_mask.png"), result.mask.astype("uint8") * 255)
        cv2.imwrite(os.path.join(output, f"{stem}_overlay.jpg"), _overlay(image, result.mask))
        share = result.mask[result.box[1]:result.box[3], result.box[0]:result.box[2]].mean()
        print(f"{path}: mask covers {share:.0%} of the face box {result.box}, "
              f"{int(result.kept.sum())} of {result.components.count} components kept")
    print(f"wrote {output}/")
    return failures
