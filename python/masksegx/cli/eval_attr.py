"""``masksegx eval-attr``: gender accuracy of the attribute network on an MTFL list or UTKFace
files (optionally with synthetic masks, beside gender-v1), and wearing-state accuracy on facemask
validation crops."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from ..eval.datasets import DatasetError
from ..eval.reference_detectors import DetectorUnavailable, make_detector
from ._common import UsageError, check_output_file, format_table, positive_int, print_error, write_json

if TYPE_CHECKING:
    import numpy as np

    from ..attributes import AttributePredictor
    from ..eval.reference_detectors import Detections

COMMAND = "eval-attr"
#: Columns of the eval-attr table.
_COLUMNS = (
    ("n_images", "faces", "{:d}"),
    ("gender_acc", "gender acc", "{:.4f}"),
    ("gender_acc_female", "female", "{:.4f}"),
    ("gender_acc_male", "male", "{:.4f}"),
    ("n_detected", "landmarks", "{:d}"),
    ("ms_per_face", "ms/face", "{:.2f}"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-attr`` subcommand."""
    command = subparsers.add_parser(
        COMMAND,
        help="score the attribute network's gender (and wearing state) on labelled faces",
        description="Gender accuracy of the attribute network on an MTFL list (annotated "
        "landmarks) or UTKFace files (gender in the name; landmarks from the package's "
        "detector; ages under 10 skipped). Validation split: every 10th line / file.",
    )
    command.add_argument("--annotations", required=True,
                         help="MTFL list, or for utk a folder of images or a file of names")
    command.add_argument("--images", required=True, help="folder the image paths are relative to")
    command.add_argument("--format", required=True, choices=("mtfl", "utk"))
    command.add_argument("--split", choices=("val", "train", "all"), default="all",
                         help="val: every 10th line (mtfl) / file in sorted order (utk)")
    command.add_argument("--synthetic-mask", action="store_true",
                         help="put a synthetic mask (worn correctly) on each face first")
    command.add_argument("--templates", help="MaskTheFace template folder (with --synthetic-mask)")
    command.add_argument("--model", help="attribute .onnx (default: the shipped model)")
    command.add_argument("--no-mirror", action="store_true",
                         help="one pass per face (default: average the crop and its mirror image)")
    command.add_argument("--reference", metavar="gender-v1.onnx",
                         help="also score the gender-v1 reference on the same faces")
    command.add_argument("--facemask", metavar="DIR",
                         help="det/facemask folder: add the wearing-state accuracy on its "
                         "validation crops")
    command.add_argument("--models-dir", help="folder with retinaface_mnet025_512.onnx: facemask "
                         "crop landmarks from RetinaFace (default: the package's detector)")
    command.add_argument("--json", metavar="OUT.json", help="also write the scores to this file")
    command.add_argument("--limit", type=positive_int, metavar="N", help="use only the first N faces")


def run(args: argparse.Namespace) -> int:
    """Score the attribute network, print the tables and write ``args.json``; exit code 0 or 2."""
    if args.synthetic_mask and not args.templates:
        raise UsageError("--synthetic-mask needs --templates DIR")
    check_output_file(args.json, "--json")
    from ..detect import ModelNotFoundError

    try:
        predictor, summary = _evaluate(args)
    except (DatasetError, DetectorUnavailable, ModelNotFoundError, ValueError) as err:
        print_error(COMMAND, err)
        return 2
    label = "attributes" + (" (synthetic masks)" if args.synthetic_mask else "")
    print(format_table(label, summary, _COLUMNS, "model"))
    if "reference" in summary:
        print(format_table("gender-v1", {**summary["reference"], "n_images": summary["n_images"]},
                           _COLUMNS[:4], "model"))
    if "wearing" in summary:
        wearing = summary["wearing"]
        print(f"wearing state on facemask validation crops: accuracy "
              f"{wearing['wearing_acc']:.4f} over {wearing['n_faces']} faces "
              f"({wearing['n_missed']} without landmarks)")
    if args.json:
        record = {"format": args.format, "split": args.split,
                  "synthetic_mask": bool(args.synthetic_mask), "mirror": not args.no_mirror,
                  "model": predictor.model_path, **summary}
        write_json(args.json, record)
    return 0


def _evaluate(args: argparse.Namespace) -> tuple[AttributePredictor, dict[str, Any]]:
    """The predictor and its scores: gender, and with ``--facemask`` the wearing state."""
    from ..attributes import AttributePredictor
    from ..detect import detect_faces
    from ..eval.attributes import (
        GenderV1,
        MaskPainter,
        evaluate_gender,
        evaluate_wearing,
        facemask_faces,
        gender_items,
        neighbourhood_landmarks,
    )

    predictor = AttributePredictor(args.model, threads=1, mirror=not args.no_mirror)
    items = gender_items(args.annotations, args.images, args.format, args.split)
    if args.limit is not None:
        items = items[: args.limit]
    painter = MaskPainter(args.templates) if args.synthetic_mask else None
    reference = GenderV1(args.reference) if args.reference else None

    def detect(image: np.ndarray) -> Detections:
        found = detect_faces(image)
        return found.boxes, found.scores, found.landmarks

    summary = evaluate_gender(items, predictor, detect_fn=detect, painter=painter,
                              reference=reference)
    if args.facemask:
        if args.models_dir:
            landmark_detector = make_detector("retinaface", args.models_dir)
        else:
            landmark_detector = detect
        faces, missed = facemask_faces(
            os.path.join(args.facemask, "images"), os.path.join(args.facemask, "annotations"),
            "val", lambda image, box: neighbourhood_landmarks(landmark_detector, image, box),
        )
        summary["wearing"] = evaluate_wearing(faces, predictor, missed)
    return predictor, summary
