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

``eval-landmarks``  score a detector's 5 landmarks on a CUHK or MTFL list (NME)::

    masksegx eval-landmarks --annotations det/cuhk5pt/annotations.txt \
        --images det/cuhk5pt/images --format cuhk --detector mtcnn --json lm.json

``eval-attr``  gender accuracy of the attribute network on an MTFL list or UTKFace files
(optionally with synthetic masks, beside gender-v1), and wearing-state accuracy on facemask
validation crops::

    masksegx eval-attr --annotations attr/mtfl_train/annotations.txt \
        --images attr/mtfl_train/images --format mtfl --split val --json attr.json \
        [--synthetic-mask --templates masktemplates] [--reference models/gender-v1.onnx] \
        [--facemask det/facemask --models-dir models]

Exit codes: 0 success, 1 some inputs could not be processed (each named on stderr, the others
done), 2 bad arguments or unusable data (message on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Optional

from .eval.baselines import SEGMENTATION_METHODS, spectral
from .eval.compensations import COMPENSATION_METHODS
from .eval.datasets import MASK_VALUES, DatasetError, evaluate_segmentation, pair_files, read_image
from .eval.detection import (
    FACEMASK_CLASSES,
    SPLITS,
    evaluate_detector,
    evaluate_landmarks,
    read_cuhk,
    read_mtfl,
    split_pairs,
    voc_pairs,
)
from .eval.reference_detectors import DETECTOR_NAMES, DetectorUnavailable, make_detector
from .examples import EXAMPLES
from .spectral import segment_spectral

#: Methods of the learned path (masksegx.learned), besides the spectral pipeline and baselines.
LEARNED_METHODS = ("learned", "fused")
FACE_MODES = ("whole-image", "detect")
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
#: Columns of the eval-det table (recall keys flattened as recall_<class>).
_DET_COLUMNS = (
    ("n_images", "images", "{:d}"),
    ("ap50", "AP50", "{:.4f}"),
    ("ap50_min20", "AP50 min20", "{:.4f}"),
    *((f"recall_{name}", f"R {name}", "{:.4f}") for name in FACEMASK_CLASSES),
    ("ms_per_image", "ms/image", "{:.1f}"),
)
#: Columns of the eval-landmarks table.
_LANDMARK_COLUMNS = (
    ("n_images", "images", "{:d}"),
    ("detected", "detected", "{:.4f}"),
    ("nme", "NME", "{:.4f}"),
)
#: Columns of the eval-attr table.
_ATTR_COLUMNS = (
    ("n_images", "faces", "{:d}"),
    ("gender_acc", "gender acc", "{:.4f}"),
    ("gender_acc_female", "female", "{:.4f}"),
    ("gender_acc_male", "male", "{:.4f}"),
    ("n_detected", "landmarks", "{:d}"),
    ("ms_per_face", "ms/face", "{:.2f}"),
)
_LANDMARK_READERS = {"cuhk": read_cuhk, "mtfl": read_mtfl}


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
    seg.add_argument("--method", required=True, choices=sorted([*SEGMENTATION_METHODS, *LEARNED_METHODS]))
    seg.add_argument(
        "--faces",
        choices=FACE_MODES,
        default="whole-image",
        help="whole-image: the image is the face crop; detect: segment inside each face the "
        "MTCNN detector finds (union; the timing then includes detection)",
    )
    seg.add_argument("--model", metavar="NET.onnx", help="ONNX mask net for --method learned/fused")
    seg.add_argument(
        "--compensation",
        choices=sorted(COMPENSATION_METHODS),
        help="region compensation of the spectral pipeline (only with --method spectral)",
    )
    seg.add_argument("--json", metavar="OUT.json", help="also write the scores to this file")
    seg.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N pairs")
    seg.add_argument(
        "--step",
        type=_positive_int,
        metavar="K",
        help="use every K-th pair in sorted order (with --offset; e.g. --step 4: real_dev_val)",
    )
    seg.add_argument("--offset", type=int, default=0, metavar="I", help="first pair for --step")

    segment = commands.add_parser(
        "segment",
        help="faces, attributes and worn-mask segmentation of images and videos",
        description="Find faces, read gender and mask coverage and segment the worn face mask. "
        "Per image (or video frame) writes <name>.json (faces, attributes, masks as COCO RLE), "
        "<name>_mask.png and <name>_overlay.jpg. Unreadable inputs are reported on stderr and "
        "skipped (exit code 1).",
    )
    segment.add_argument("inputs", nargs="+", help="image or video files, folders, glob patterns")
    segment.add_argument("-o", "--output", required=True, help="output folder")
    _add_segmenter_arguments(segment)
    segment.add_argument(
        "--frame-step", type=_positive_int, default=1, metavar="N",
        help="use every N-th frame of videos (default 1)",
    )

    demo = commands.add_parser("demo", help="segment the bundled example photos")
    demo.add_argument("-o", "--output", default="masksegx-demo", help="output folder")
    _add_segmenter_arguments(demo)

    spec = commands.add_parser(
        "spectral",
        help="spectral face-mask extraction on image files",
        description="Segment the worn face mask with the paper's spectral method. Each image is "
        "taken as a face crop unless --box gives the face box. Writes <stem>_mask.png (0/255) "
        "and <stem>_overlay.jpg per image.",
    )
    spec.add_argument("images", nargs="+", help="image files")
    spec.add_argument("--box", type=_box, help="face box x0,y0,x1,y1 in pixels (all images)")
    spec.add_argument("-o", "--output", required=True, help="output folder")

    det = commands.add_parser(
        "eval-det",
        help="score a face detector on Pascal VOC images + annotations",
        description="Score a face detector on images paired with Pascal VOC xml files by stem: "
        "VOC AP at IoU 0.5 over all boxes, the same with boxes narrower than 20 px ignored, "
        "recall per mask class. Prints a table, optionally writes JSON.",
    )
    det.add_argument("--images", required=True, help="folder of images")
    det.add_argument("--annotations", required=True, help="folder of Pascal VOC .xml files")
    det.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="val: images whose number ends in 1 (facemask validation split), train: the rest",
    )
    _add_detector_arguments(det)
    det.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N images")

    marks = commands.add_parser(
        "eval-landmarks",
        help="score a detector's 5 landmarks on a CUHK or MTFL list",
        description="Mean point error over inter-ocular distance (NME) of the detection matching "
        "each annotated face, and the share of faces matched.",
    )
    marks.add_argument("--annotations", required=True, help="annotation list file")
    marks.add_argument("--images", required=True, help="folder the list's paths are relative to")
    marks.add_argument("--format", required=True, choices=sorted(_LANDMARK_READERS))
    _add_detector_arguments(marks)
    marks.add_argument(
        "--limit", type=_positive_int, metavar="N", help="use only the first N faces"
    )

    attr = commands.add_parser(
        "eval-attr",
        help="score the attribute network's gender (and wearing state) on labelled faces",
        description="Gender accuracy of the attribute network on an MTFL list (annotated "
        "landmarks) or UTKFace files (gender in the name; landmarks from the package's "
        "detector; ages under 10 skipped). Validation split: every 10th line / file.",
    )
    attr.add_argument("--annotations", required=True,
                      help="MTFL list, or for utk a folder of images or a file of names")
    attr.add_argument("--images", required=True, help="folder the image paths are relative to")
    attr.add_argument("--format", required=True, choices=("mtfl", "utk"))
    attr.add_argument("--split", choices=("val", "train", "all"), default="all",
                      help="val: every 10th line (mtfl) / file in sorted order (utk)")
    attr.add_argument("--synthetic-mask", action="store_true",
                      help="put a synthetic mask (worn correctly) on each face first")
    attr.add_argument("--templates", help="MaskTheFace template folder (with --synthetic-mask)")
    attr.add_argument("--model", help="attribute .onnx (default: the shipped model)")
    attr.add_argument("--no-mirror", action="store_true",
                      help="one pass per face (default: average the crop and its mirror image)")
    attr.add_argument("--reference", metavar="gender-v1.onnx",
                      help="also score the gender-v1 reference on the same faces")
    attr.add_argument("--facemask", metavar="DIR",
                      help="det/facemask folder: add the wearing-state accuracy on its "
                      "validation crops")
    attr.add_argument("--models-dir", help="folder with retinaface_mnet025_512.onnx: facemask "
                      "crop landmarks from RetinaFace (default: the package's detector)")
    attr.add_argument("--json", metavar="OUT.json", help="also write the scores to this file")
    attr.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N faces")
    return parser


def _add_detector_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--detector",
        choices=DETECTOR_NAMES,
        default="mtcnn",
        help="mtcnn: the package's cascade; others: reference models in --models-dir",
    )
    command.add_argument("--models-dir", help="folder of the reference .onnx models")
    command.add_argument("--json", metavar="OUT.json", help="also write the scores to this file")


def _add_segmenter_arguments(command: argparse.ArgumentParser) -> None:
    from .pipeline import FACE_MODES, GENDER_CONSTRAINTS, METHODS

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
        "--threads", type=_positive_int, default=1, metavar="N",
        help="images processed at once on threads sharing one segmenter (default 1)",
    )
    command.add_argument(
        "--workers", type=_positive_int, default=1, metavar="N",
        help="worker processes, each with its own segmenter, for large folders on many cores "
        "(default 1; not with --threads)",
    )
    command.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )


def _segment(inputs: Sequence[str], args: argparse.Namespace, frame_step: int = 1) -> int:
    from .batch import expand_inputs, progress_stream, run_batch
    from .pipeline import FaceMaskSegmenter

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
        )
    except (ValueError, OSError) as err:
        print(f"masksegx segment: error: {err}", file=sys.stderr)
        return 2
    for label, message in problems + report.failures:
        print(f"masksegx segment: {label}: {message}", file=sys.stderr)
    print(f"wrote {report.written} result(s) to {args.output}/")
    return 1 if problems or report.failures else 0


def _box(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected x0,y0,x1,y1 integers, got {text!r}")
    return values


def _overlay(image, mask):
    """The image with the mask tinted green and its outline drawn."""
    import cv2
    import numpy as np

    out = image.copy()
    out[mask] = (0.5 * out[mask] + np.array([0, 110, 0])).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (0, 255, 0), 2)
    return out


def _segment_files(items, output: str) -> int:
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


def _format_table(label: str, summary: dict, columns=_COLUMNS, first: str = "method") -> str:
    headers = [first] + [header for _, header, _ in columns]
    cells = [label] + [fmt.format(summary[key]) for key, _, fmt in columns]
    widths = [max(len(h), len(c)) for h, c in zip(headers, cells)]
    return "\n".join(
        "  ".join(text.rjust(width) for text, width in zip(row, widths)) for row in (headers, cells)
    )


def _box_segmenter(args: argparse.Namespace):
    """``f(image, box) -> bool mask`` for the chosen method; box None = the whole image."""
    if args.method in LEARNED_METHODS:
        from .learned import MaskNet, segment_fused

        net = MaskNet(args.model)
        if args.method == "learned":
            return lambda image, box: net.segment(image, box)
        return lambda image, box: segment_fused(image, box, model=net)
    segmenter = SEGMENTATION_METHODS[args.method]
    if args.compensation is not None:
        segmenter = functools.partial(spectral, compensation=COMPENSATION_METHODS[args.compensation])

    def run(image, box):
        if box is None:
            return segmenter(image, None)
        import numpy as np

        h, w = image.shape[:2]
        x0, y0 = max(int(round(box[0])), 0), max(int(round(box[1])), 0)
        x1, y1 = min(int(round(box[2])), w), min(int(round(box[3])), h)
        region = np.zeros((h, w), bool)
        region[y0:y1, x0:x1] = True
        return segmenter(image, region)

    return run


def _face_union(segment, counts: dict):
    """``f(image) -> mask``: union of ``segment(image, box)`` over the detected faces."""
    import numpy as np

    from .detect import FaceDetector

    detector = FaceDetector()

    def run(image):
        faces = detector(image)
        counts["faces"] += len(faces)
        counts["images_without_face"] += len(faces) == 0
        mask = np.zeros(image.shape[:2], bool)
        for box in faces.boxes:
            if box[2] > 0 and box[3] > 0 and box[0] < image.shape[1] and box[1] < image.shape[0]:
                mask |= segment(image, box)
        return mask

    return run


def _eval_seg(args: argparse.Namespace) -> int:
    label = args.method
    if args.compensation is not None:
        label = f"{args.method}+{args.compensation}"
    if args.faces == "detect":
        label += "@detect"
    counts = {"faces": 0, "images_without_face": 0}
    try:
        segment = _box_segmenter(args)
        if args.faces == "detect":
            segment_fn = _face_union(segment, counts)
        else:
            segment_fn = lambda image: segment(image, None)  # noqa: E731
        pairs = pair_files(args.images, args.masks)
        if not pairs:
            raise DatasetError(f"no image/mask pairs found in {args.images!r} and {args.masks!r}")
        if args.step is not None:
            pairs = pairs[args.offset :: args.step]
        if args.limit is not None:
            pairs = pairs[: args.limit]
        summary = evaluate_segmentation(pairs, segment_fn, args.mask_value)
    except (DatasetError, ValueError) as err:  # ModelNotFoundError is a ValueError too
        print(f"masksegx eval-seg: error: {err}", file=sys.stderr)
        return 2
    print(_format_table(label, summary))
    if args.faces == "detect":
        print(f"faces found: {counts['faces']}, images without a face: {counts['images_without_face']}")
    if args.json:
        record = {"method": args.method, **summary}
        if args.faces == "detect":
            record.update(faces_mode="detect", **counts)
        if args.model is not None:
            record["model"] = args.model
        if args.compensation is not None:
            record["compensation"] = args.compensation
        _write_json(args.json, record)
    return 0


def _write_json(path: str, record: dict) -> None:
    # NaN (e.g. AP with no ground truth) is not JSON: write null.
    def clean(value):
        if isinstance(value, dict):
            return {key: clean(v) for key, v in value.items()}
        return None if isinstance(value, float) and math.isnan(value) else value

    with open(path, "w", encoding="utf-8") as out:
        json.dump(clean(record), out, indent=2)
        out.write("\n")


def _eval_det(args: argparse.Namespace) -> int:
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
        print(f"masksegx eval-det: error: {err}", file=sys.stderr)
        return 2
    flat = {**summary, **{f"recall_{k}": v for k, v in summary["recall"].items()}}
    print(_format_table(args.detector, flat, _DET_COLUMNS, "detector"))
    if args.json:
        _write_json(args.json, {"detector": args.detector, "split": args.split, **summary})
    return 0


def _eval_landmarks(args: argparse.Namespace) -> int:
    try:
        items = _LANDMARK_READERS[args.format](args.annotations)
        if args.limit is not None:
            items = items[: args.limit]
        detector = make_detector(args.detector, args.models_dir)
        summary = evaluate_landmarks(items, args.images, detector)
    except (DatasetError, DetectorUnavailable) as err:
        print(f"masksegx eval-landmarks: error: {err}", file=sys.stderr)
        return 2
    print(_format_table(args.detector, summary, _LANDMARK_COLUMNS, "detector"))
    if args.json:
        _write_json(args.json, {"detector": args.detector, "format": args.format, **summary})
    return 0


def _eval_attr(args: argparse.Namespace) -> int:
    from .attributes import AttributePredictor
    from .detect import ModelNotFoundError, detect_faces
    from .eval.attributes import (
        GenderV1,
        MaskPainter,
        evaluate_gender,
        evaluate_wearing,
        facemask_faces,
        gender_items,
        neighbourhood_landmarks,
    )

    try:
        predictor = AttributePredictor(args.model, threads=1, mirror=not args.no_mirror)
        items = gender_items(args.annotations, args.images, args.format, args.split)
        if args.limit is not None:
            items = items[: args.limit]
        painter = MaskPainter(args.templates) if args.synthetic_mask else None
        reference = GenderV1(args.reference) if args.reference else None

        def detect(image):
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
    except (DatasetError, DetectorUnavailable, ModelNotFoundError, ValueError) as err:
        print(f"masksegx eval-attr: error: {err}", file=sys.stderr)
        return 2
    label = "attributes" + (" (synthetic masks)" if args.synthetic_mask else "")
    print(_format_table(label, summary, _ATTR_COLUMNS, "model"))
    if "reference" in summary:
        print(_format_table("gender-v1", {**summary["reference"], "n_images": summary["n_images"]},
                            _ATTR_COLUMNS[:4], "model"))
    if "wearing" in summary:
        wearing = summary["wearing"]
        print(f"wearing state on facemask validation crops: accuracy "
              f"{wearing['wearing_acc']:.4f} over {wearing['n_faces']} faces "
              f"({wearing['n_missed']} without landmarks)")
    if args.json:
        record = {"format": args.format, "split": args.split,
                  "synthetic_mask": bool(args.synthetic_mask), "mirror": not args.no_mirror,
                  "model": predictor.model_path, **summary}
        _write_json(args.json, record)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "segment":
        return _segment(args.inputs, args, args.frame_step)
    if args.command == "demo":
        return _segment([e.path for e in EXAMPLES], args)
    if args.command == "spectral":
        return 1 if _segment_files([(p, args.box) for p in args.images], args.output) else 0
    if args.command == "eval-seg":
        if args.compensation is not None and args.method != "spectral":
            parser.error("--compensation applies only to --method spectral")
        if args.model is not None and args.method not in LEARNED_METHODS:
            parser.error("--model applies only to --method learned or fused")
        if args.step is None and args.offset:
            parser.error("--offset needs --step")
        return _eval_seg(args)
    if args.command == "eval-det":
        return _eval_det(args)
    if args.command == "eval-landmarks":
        return _eval_landmarks(args)
    if args.command == "eval-attr":
        if args.synthetic_mask and not args.templates:
            parser.error("--synthetic-mask needs --templates DIR")
        return _eval_attr(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects the rest
