"""The ``masksegx`` command line.

Subcommands:

``segment``   find faces, read their attributes and segment their masks in images, folders,
              glob patterns and videos; writes JSON (COCO RLE masks), mask PNGs and overlays::

    masksegx segment photos/ "more/*.jpg" clip.mp4 -o out --threads 2
    masksegx segment big-folder/ -o out --workers 8      # 8 processes, one segmenter each

``demo``      ``segment`` on the bundled example photos::

    masksegx demo -o masksegx-demo

``spectral``  the spectral face-mask extraction on image files (each a face crop, or a face box)::

    masksegx spectral photo.jpg --box 150,50,420,390 -o out

``eval-seg``  score a segmentation method on a folder of images and ground-truth masks::

    masksegx eval-seg --images data/images --masks data/masks --mask-value 255 --method fcm
    masksegx eval-seg --images data/images --masks data/masks --mask-value 255 --method fused \
        --faces detect

  ``--method learned|fused`` run the learned net (``--model`` another ONNX net, e.g. the Table 4
  U-Net); ``--faces detect`` segments inside each face found by the MTCNN detector (union of
  the faces; no face found = empty mask) instead of taking the whole image as the face.

``eval-det``  score a face detector on Pascal VOC folders (AP at IoU 0.5, recall per class)::

    masksegx eval-det --images det/facemask/images --annotations det/facemask/annotations \
        --split val --detector retinaface --models-dir shared/data/models --json det.json

``eval-found``  share of images where a detector finds a face, on folders without boxes::

    masksegx eval-found --images masked_unlabeled/rwmfd --detector yunet --models-dir models
    masksegx eval-found --images attr/utkface --every 10     # UTKFace validation files

``eval-landmarks``  score a detector's 5 landmarks on a CUHK or MTFL list (NME)::

    masksegx eval-landmarks --annotations det/cuhk5pt/annotations.txt \
        --images det/cuhk5pt/images --format cuhk --detector mtcnn --json lm.json

``eval-attr``  gender accuracy of the attribute network on an MTFL list or UTKFace files
(optionally with synthetic masks, beside gender-v1), and wearing-state accuracy with a
confusion table on facemask and det/ilc2021 validation crops::

    masksegx eval-attr --annotations attr/mtfl_train/annotations.txt \
        --images attr/mtfl_train/images --format mtfl --split val --json attr.json \
        [--synthetic-mask --templates masktemplates] [--reference models/gender-v1.onnx] \
        [--facemask det/facemask --ilc det/ilc2021 --models-dir models]

Exit codes: 0 success, 1 some inputs could not be processed or were damaged (each named on
stderr, the others done), 2 bad arguments or unusable data (message on stderr, no traceback),
130 interrupted (Ctrl-C; one line on stderr).

Each subcommand is one module here with ``register(subparsers)`` (its options) and ``run(args)``
(its exit code); ``_common`` holds what several of them use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Protocol

from . import demo, eval_attr, eval_det, eval_found, eval_landmarks, eval_seg, segment, spectral
from ._common import UsageError


class _Subcommand(Protocol):
    """What each subcommand module provides."""

    COMMAND: str

    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: The subcommands, in the order ``masksegx --help`` lists them.
_SUBCOMMANDS: tuple[_Subcommand, ...] = (
    eval_seg, segment, demo, spectral, eval_det, eval_found, eval_landmarks, eval_attr,
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="masksegx", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for subcommand in _SUBCOMMANDS:
        subcommand.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    subcommand = next(s for s in _SUBCOMMANDS if s.COMMAND == args.command)
    try:
        return subcommand.run(args)
    except UsageError as err:
        parser.error(str(err))
    except KeyboardInterrupt:
        print(f"masksegx {args.command}: interrupted", file=sys.stderr)
        return 130
