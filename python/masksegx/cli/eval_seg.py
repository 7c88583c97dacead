"""``masksegx eval-seg``: score a segmentation method on a folder of images and ground-truth masks."""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Optional

from ..eval.baselines import SEGMENTATION_METHODS, Segmenter, spectral
from ..eval.compensations import COMPENSATION_METHODS
from ..eval.datasets import (
    MASK_VALUES,
    DatasetError,
    MaskValueWarning,
    evaluate_segmentation,
    match_files,
)
from ..eval.report import write_json
from ._common import UsageError, check_output_file, format_table, positive_int, print_error

COMMAND = "eval-seg"
#: Methods of the learned path (masksegx.learned), besides the spectral pipeline and baselines.
LEARNED_METHODS = ("learned", "fused")
FACE_MODES = ("whole-image", "detect")
#: Columns of the eval-seg table.
_COLUMNS = (
    ("n_images", "images", "{:d}"),
    ("miou", "mIoU", "{:.4f}"),
    ("mask_iou", "mask IoU", "{:.4f}"),
    ("bg_iou", "bg IoU", "{:.4f}"),
    ("pacc", "pAcc", "{:.4f}"),
    ("mean_image_iou", "image IoU", "{:.4f}"),
    ("ms_per_image", "ms/image", "{:.1f}"),
)

if TYPE_CHECKING:
    import numpy as np

    #: (image, face box or None for the whole image) -> bool mask.
    BoxSegmenter = Callable[[np.ndarray, Optional[np.ndarray]], np.ndarray]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-seg`` subcommand."""
    command = subparsers.add_parser(
        COMMAND,
        help="score a segmentation method on images + ground-truth masks",
        description="Score a segmentation method on image/mask pairs (paired by file stem; "
        "a mask may carry a _gt suffix). Prints a table, optionally writes JSON.",
    )
    command.add_argument("--images", required=True, help="folder of images (.jpg/.jpeg/.png/.bmp)")
    command.add_argument("--masks", required=True, help="folder of ground-truth masks")
    command.add_argument(
        "--mask-value",
        type=int,
        required=True,
        choices=MASK_VALUES,
        help="255: binary masks, pixels > 127 are mask; 2: label maps, pixels == 2 are mask",
    )
    command.add_argument(
        "--method", required=True, choices=sorted([*SEGMENTATION_METHODS, *LEARNED_METHODS])
    )
    command.add_argument(
        "--faces",
        choices=FACE_MODES,
        default="whole-image",
        help="whole-image: the image is the face crop; detect: segment inside each face the "
        "MTCNN detector finds (union; the timing then includes detection)",
    )
    command.add_argument("--model", metavar="NET.onnx", help="ONNX mask net for --method learned/fused")
    command.add_argument(
        "--compensation",
        choices=sorted(COMPENSATION_METHODS),
        help="region compensation of the spectral pipeline (only with --method spectral)",
    )
    command.add_argument("--json", metavar="OUT.json", help="also write the scores to this file")
    command.add_argument("--limit", type=positive_int, metavar="N", help="use only the first N pairs")
    command.add_argument(
        "--step",
        type=positive_int,
        metavar="K",
        help="use every K-th pair in sorted order (with --offset; e.g. --step 4: real_dev_val)",
    )
    command.add_argument("--offset", type=int, default=0, metavar="I", help="first pair for --step")


def run(args: argparse.Namespace) -> int:
    """Score ``args.method``, print the table and write ``args.json``; exit code 0 or 2.

    Warnings on stderr: how many images and masks were left without a partner, and how many
    masks read with ``--mask-value 255`` hold only 0/1/2 (label maps: they score 0).
    """
    _check_options(args)
    check_output_file(args.json, "--json")
    counts = {"faces": 0, "images_without_face": 0}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MaskValueWarning)
            summary = _evaluate(args, counts)
    except (DatasetError, ValueError) as err:  # ModelNotFoundError is a ValueError too
        print_error(COMMAND, err)
        return 2
    finally:
        _report_warnings(caught)
    print(format_table(_label(args), summary, _COLUMNS, "method"))
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
        write_json(args.json, record)
    return 0


def _check_options(args: argparse.Namespace) -> None:
    if args.compensation is not None and args.method != "spectral":
        raise UsageError("--compensation applies only to --method spectral")
    if args.model is not None and args.method not in LEARNED_METHODS:
        raise UsageError("--model applies only to --method learned or fused")
    if args.step is None and args.offset:
        raise UsageError("--offset needs --step")


def _label(args: argparse.Namespace) -> str:
    """The method column: method, +compensation, @detect."""
    label: str = args.method
    if args.compensation is not None:
        label = f"{args.method}+{args.compensation}"
    if args.faces == "detect":
        label += "@detect"
    return label


def _evaluate(args: argparse.Namespace, counts: dict[str, int]) -> dict[str, float | int]:
    """The scores of the chosen method on the chosen pairs; face counts go into ``counts``."""
    segment = _box_segmenter(args)
    if args.faces == "detect":
        segment_fn = _face_union(segment, counts)
    else:
        segment_fn = lambda image: segment(image, None)  # noqa: E731
    pairs, lonely_images, lonely_masks = match_files(args.images, args.masks)
    for lonely, what in ((lonely_images, "image(s) without a mask"),
                         (lonely_masks, "mask(s) without an image")):
        if lonely:
            names = ", ".join(path.name for path in lonely[:3]) + (", ..." if len(lonely) > 3 else "")
            _warning(f"{len(lonely)} {what} left out ({names})")
    if not pairs:
        raise DatasetError(f"no image/mask pairs found in {args.images!r} and {args.masks!r}")
    if args.step is not None:
        pairs = pairs[args.offset :: args.step]
    if args.limit is not None:
        pairs = pairs[: args.limit]
    return evaluate_segmentation(pairs, segment_fn, args.mask_value)


def _warning(message: str) -> None:
    print(f"masksegx {COMMAND}: warning: {message}", file=sys.stderr)


def _report_warnings(caught: list[warnings.WarningMessage]) -> None:
    """One line for all label-map warnings (a whole dataset read the wrong way would give one
    per file); other warnings as Python shows them."""
    label_maps = [w for w in caught if issubclass(w.category, MaskValueWarning)]
    if label_maps:
        _warning(f"{len(label_maps)} mask(s) hold only values 0..2, label maps: read with "
                 f"--mask-value 255 they are empty and score 0; use --mask-value 2 "
                 f"(first: {label_maps[0].message})")
    for w in caught:
        if not issubclass(w.category, MaskValueWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _box_segmenter(args: argparse.Namespace) -> BoxSegmenter:
    """``f(image, box) -> bool mask`` for the chosen method; box None = the whole image."""
    if args.method in LEARNED_METHODS:
        from ..learned import MaskNet, segment_fused

        net = MaskNet(args.model)
        if args.method == "learned":
            return lambda image, box: net.segment(image, box)
        return lambda image, box: segment_fused(image, box, model=net)
    segmenter: Segmenter = SEGMENTATION_METHODS[args.method]
    if args.compensation is not None:
        segmenter = functools.partial(spectral, compensation=COMPENSATION_METHODS[args.compensation])

    def segment_in_box(image: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        if box is None:
            return segmenter(image, None)
        import numpy as np

        h, w = image.shape[:2]
        x0, y0 = max(int(round(box[0])), 0), max(int(round(box[1])), 0)
        x1, y1 = min(int(round(box[2])), w), min(int(round(box[3])), h)
        region = np.zeros((h, w), bool)
        region[y0:y1, x0:x1] = True
        return segmenter(image, region)

    return segment_in_box


def _face_union(segment: BoxSegmenter, counts: dict[str, int]) -> Callable[[np.ndarray], np.ndarray]:
    """``f(image) -> mask``: union of ``segment(image, box)`` over the detected faces."""
    import numpy as np

    from ..detect import FaceDetector

    # Each face framed by the cascade's own box, as FaceMaskSegmenter frames it.
    detector = FaceDetector(calibrated_boxes=False)

    def segment_faces(image: np.ndarray) -> np.ndarray:
        faces = detector(image)
        counts["faces"] += len(faces)
        counts["images_without_face"] += len(faces) == 0
        mask = np.zeros(image.shape[:2], bool)
        for box in faces.boxes:
            if box[2] > 0 and box[3] > 0 and box[0] < image.shape[1] and box[1] < image.shape[0]:
                mask |= segment(image, box)
        return mask

    return segment_faces
