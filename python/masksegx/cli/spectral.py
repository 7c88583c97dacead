"""``masksegx spectral``: the spectral face-mask extraction on image files."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..io import DEFAULT_MAX_PIXELS, read_image
from ..spectral import Box, segment_spectral
from ._common import positive_int

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
        "and <stem>_overlay.jpg per image (as segment does: renamed into place, existing files "
        "kept unless --overwrite; failing or damaged inputs reported, exit code 1).",
    )
    command.add_argument("images", nargs="+", help="image files")
    command.add_argument("--box", type=_box, help="face box x0,y0,x1,y1 in pixels (all images)")
    command.add_argument("-o", "--output", required=True, help="output folder")
    command.add_argument(
        "--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS, metavar="N",
        help=f"refuse images of more than N pixels (default {DEFAULT_MAX_PIXELS})",
    )
    command.add_argument("--overwrite", action="store_true", help="replace output files already there")


def run(args: argparse.Namespace) -> int:
    """Segment each of ``args.images``; exit code 1 when some failed or were damaged."""
    items = [(path, args.box) for path in args.images]
    return 1 if _segment_files(items, args.output, args.max_pixels, args.overwrite) else 0


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


def _segment_files(
    items: Iterable[tuple[str, Box | None]], output: str, max_pixels: int, overwrite: bool
) -> int:
    """Segment (path, box) items into ``output``; returns the number of failed or damaged ones."""
    from ..batch import encode_image, failure_message, write_atomically

    os.makedirs(output, exist_ok=True)
    failures = 0
    for path, box in items:
        stem = os.path.join(output, os.path.splitext(os.path.basename(path))[0])
        damage: list[str] = []
        try:
            image = read_image(path, max_pixels=max_pixels, on_warning=damage.append)
            result = segment_spectral(image, region=box)
            write_atomically([
                (f"{stem}_mask.png", encode_image(".png", result.mask.astype("uint8") * 255)),
                (f"{stem}_overlay.jpg", encode_image(".jpg", _overlay(image, result.mask))),
            ], overwrite=overwrite)
        except Exception as err:  # noqa: BLE001 - one file's failure, whatever it is, is reported
            print(f"masksegx {COMMAND}: {path}: {failure_message(err)}", file=sys.stderr)
            failures += 1
            continue
        finally:
            for message in damage:
                print(f"masksegx {COMMAND}: {path}: warning: {message}", file=sys.stderr)
        failures += bool(damage)
        share = result.mask[result.box[1]:result.box[3], result.box[0]:result.box[2]].mean()
        print(f"{path}: mask covers {share:.0%} of the face box {result.box}, "
              f"{int(result.kept.sum())} of {result.components.count} components kept")
    print(f"wrote {output}/")
    return failures
