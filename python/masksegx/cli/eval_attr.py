"""``masksegx eval-attr``: gender accuracy of the attribute network on an MTFL list or UTKFace
files (optionally with synthetic masks, beside gender-v1), and wearing-state accuracy on facemask
validation crops (det/facemask and det/ilc2021), with confusion tables."""

from __future__ import annotations

import argparse
from typing import Any

from ..eval.datasets import DatasetError
from ..eval.reference_detectors import DetectorUnavailable
from ..eval.report import write_json
from ._common import UsageError, check_output_file, format_table, positive_int, print_error

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
    command.add_argument("--ilc", metavar="DIR",
                         help="det/ilc2021 folder: add the wearing-state accuracy on its "
                         "validation crops (names ending in 0 or 1)")
    command.add_argument("--models-dir", help="folder with retinaface_mnet025_512.onnx: facemask "
                         "crop landmarks from RetinaFace (default: the package's detector)")
    command.add_argument("--json", metavar="OUT.json", help="also write the scores to this file")
    command.add_argument("--limit", type=positive_int, metavar="N", help="use only the first N faces")


def print_wearing(wearing: dict[str, Any], name: str) -> None:
    """The wearing-state accuracy line and confusion table (rows: truth) of one set."""
    print(f"wearing state on {name} validation crops: accuracy "
          f"{wearing['wearing_acc']:.4f} over {wearing['n_faces']} faces "
          f"({wearing['n_missed']} without landmarks)")
    states = list(wearing["confusion"])
    print("  truth \\ predicted " + " ".join(f"{s:>9}" for s in states))
    for truth in states:
        print(f"  {truth:>17} " + " ".join(f"{wearing['confusion'][truth][p]:>9d}" for p in states))


def run(args: argparse.Namespace) -> int:
    """Score the attribute network, print the tables and write ``args.json``; exit code 0 or 2."""
    if args.synthetic_mask and not args.templates:
        raise UsageError("--synthetic-mask needs --templates DIR")
    check_output_file(args.json, "--json")
    from ..detect import ModelNotFoundError
    from ..eval.attributes import evaluate_attributes

    try:
        record = evaluate_attributes(
            args.annotations, args.images, args.format, args.split, model=args.model,
            mirror=not args.no_mirror, templates=args.templates if args.synthetic_mask else None,
            reference=args.reference, facemask=args.facemask, ilc=args.ilc,
            models_dir=args.models_dir,
            limit=args.limit,
        )
    except (DatasetError, DetectorUnavailable, ModelNotFoundError, ValueError) as err:
        print_error(COMMAND, err)
        return 2
    label = "attributes" + (" (synthetic masks)" if args.synthetic_mask else "")
    print(format_table(label, record, _COLUMNS, "model"))
    if "reference" in record:
        print(format_table("gender-v1", {**record["reference"], "n_images": record["n_images"]},
                           _COLUMNS[:4], "model"))
    for key, name in (("wearing", "facemask"), ("wearing_ilc", "ILC")):
        if key in record:
            print_wearing(record[key], name)
    if args.json:
        write_json(args.json, record)
    return 0
