"""Compare face detectors in one process and one run: the package's MTCNN (both backends), the
same cascade on the standard MTCNN weights, and the Ultra-Light, RetinaFace and YuNet-n
reference models.

    python -m tools.compare_detectors --out docs/detectors.md

Three tables. The first, from ``--data`` (default ``../shared/data`` next to the repository):

- ``det/facemask`` validation split (images whose number ends in 1): VOC AP at IoU 0.5 over all
  boxes (AP50), with boxes narrower than 20 px ignored (AP50 min20), recall per mask class over
  every box the detector returns (its own thresholds); see :mod:`masksegx.eval.detection`.
- ``det/cuhk5pt`` (its odd 0-based lines, held out from our training): share of faces detected
  and NME (mean point error / inter-ocular distance), on the photos as they are and with a
  synthetic mask on each face (:class:`masksegx.eval.attributes.MaskPainter`, template and colour
  fixed by the image path).
- ms: median wall time of one call on the first validation image resized to 640x480 (after 2
  warm-up calls); ms val: the mean over all validation images, each resized to 640x480, of the
  median of 3 calls (after one warm-up call). Single thread for the onnxruntime reference
  models.

The second, per VOC source (``det/facemask`` validation split, ``det/ilc2021`` validation split:
names ending in 0 or 1), each detector at its own default thresholds: AP50 over faces >= 20 px
wide, recall per mask class, precision over all detections and over those >= 20 px wide.

The third, found rates (share of images with at least one detection; every image holds a face):
``det/cuhk5pt`` (all images), ``attr/utkface`` validation files (every 10th in name order),
``seg/real_dev`` and ``seg/ffhq_synthmask/test`` crops (and the two together), and
``masked_unlabeled/rwmfd`` (every 4th in name order: the part the detector's teacher
training leaves out, ``masksegx.training.samples.TEACHER_SETS``). The second and third tables
skip the onnxruntime rows (the same nets as the native rows, the same figures).

A detector that cannot be built or run (module or model missing, ``models=`` not supported)
gets "n/a" and the reason on stderr; landmark columns are "n/a" for detectors without landmarks.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from masksegx._models import CLOSE_UP_MODELS, DETECTOR_MODELS
from masksegx.eval.attributes import MaskPainter
from masksegx.eval.datasets import DatasetError, read_image
from masksegx.eval.detection import (
    FACEMASK_CLASSES,
    evaluate_detector,
    evaluate_found,
    evaluate_landmarks,
    image_files,
    read_cuhk,
    split_pairs,
    voc_pairs,
)
from masksegx.eval.reference_detectors import (
    REFERENCE_MODELS,
    STANDARD_MTCNN_MODELS,
    RetinaFaceDetector,
    UltraLightDetector,
    YuNetDetector,
    mtcnn_detector,
)
from masksegx.eval.report import markdown_table
from masksegx.training.samples import TEACHER_SETS

from . import DATA

TIMING_SIZE = (640, 480)
TIMING_RUNS = 20

Factory = Callable[[], Callable]


#: Our cascade's files in a folder given by --ours (the shipped ones by default).
OURS = tuple(path.name for path in DETECTOR_MODELS)
#: The close-up pass's files, used from that folder when it holds its own R- and O-net.
OURS_CLOSE_UP = tuple(path.name for path in CLOSE_UP_MODELS)


def _detectors(models: Path, ours: Path | None = None) -> list[tuple[str, Factory]]:
    """(label, factory) in table order; a factory builds its detector (it may raise)."""
    standard = [models / name for name in STANDARD_MTCNN_MODELS]
    candidate = None if ours is None else [ours / name for name in OURS]
    close_up = (
        [ours / name for name in OURS_CLOSE_UP]
        if ours is not None and all((ours / name).is_file() for name in OURS_CLOSE_UP[1:])
        else None
    )
    return [
        ("ours, native", lambda: mtcnn_detector("native", candidate, close_up_models=close_up)),
        ("ours, onnxruntime",
         lambda: mtcnn_detector("onnxruntime", candidate, close_up_models=close_up)),
        ("standard MTCNN, native", lambda: mtcnn_detector("native", standard)),
        ("standard MTCNN, onnxruntime", lambda: mtcnn_detector("onnxruntime", standard)),
        ("Ultra-Light RFB-320", lambda: UltraLightDetector(models / "version-RFB-320.onnx")),
        (
            "Ultra-Light RFB-640 masked",
            lambda: UltraLightDetector(models / "RFB-640-masked_face-v2.onnx"),
        ),
        (
            "RetinaFace mnet0.25 512",
            lambda: RetinaFaceDetector(models / "retinaface_mnet025_512.onnx"),
        ),
        ("YuNet-n", lambda: YuNetDetector(models / REFERENCE_MODELS["yunet"])),
    ]


def _milliseconds(detect: Callable, image: np.ndarray) -> float:
    for _ in range(2):
        detect(image)
    times = []
    for _ in range(TIMING_RUNS):
        start = time.perf_counter()
        detect(image)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def _mean_milliseconds(detect: Callable, images: list) -> float:
    per_image = []
    for image in images:
        detect(image)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            detect(image)
            times.append(time.perf_counter() - start)
        per_image.append(statistics.median(times))
    return 1000.0 * statistics.fmean(per_image)


#: The detector's teacher runs leave out every n-th rwmfd image (from index n - 1, as
#: image_files(every=n) picks them): the held-out part scored here.
_RWMFD_HELD_OUT = TEACHER_SETS["rwmfd"][2]
#: Found-rate sets: (column key, header, folder under --data, every n-th image).
FOUND_SETS = (
    ("cuhk5pt", "cuhk5pt", "det/cuhk5pt/images", 1),
    ("utkface_val", "utkface val", "attr/utkface", 10),
    ("real_dev", "real_dev", "seg/real_dev/images", 1),
    ("ffhq_test", "ffhq_synthmask test", "seg/ffhq_synthmask/test/images", 1),
    ("rwmfd", "rwmfd held out", "masked_unlabeled/rwmfd", _RWMFD_HELD_OUT),
)
#: VOC sources of the second table: (label, folder under --data, split).
VOC_SOURCES = (("facemask val", "det/facemask", "val"), ("ILC val", "det/ilc2021", "ilc-val"))


def _source_rows(label: str, factory: Factory, voc_sets: dict, found_sets: dict) -> tuple[list, dict]:
    """The second table's rows (one per VOC source) and the third table's row of a detector."""
    try:
        detect = factory()
    except Exception as err:  # noqa: BLE001 - reported in the first table's pass as well
        print(f"{label}: n/a ({type(err).__name__}: {err})", file=sys.stderr)
        return [{"source": source, "detector": label} for source in voc_sets], {"detector": label}
    voc_rows = []
    for source, pairs in voc_sets.items():
        scores = evaluate_detector(pairs, detect)
        voc_rows.append({
            "source": source, "detector": label, "ap50_min20": scores["ap50_min20"],
            **{f"recall_{name}": value for name, value in scores["recall"].items()},
            "precision": scores["precision"], "precision_min20": scores["precision_min20"],
        })
    found = {"detector": label}
    for key, images in found_sets.items():
        found[key] = evaluate_found(images, detect)["found_rate"]
    counts = [found[key] * len(found_sets[key]) for key in ("real_dev", "ffhq_test")]
    found["seg_test"] = sum(counts) / (len(found_sets["real_dev"]) + len(found_sets["ffhq_test"]))
    print(f"{label}: sources done", file=sys.stderr)
    return voc_rows, found


def _row(label: str, factory: Factory, pairs, landmark_items, cuhk_images, timing_images,
         painter) -> dict:
    row = {"detector": label}
    try:
        detect = factory()
        has_landmarks = detect(timing_images[0])[2] is not None  # also probes that it runs
    except Exception as err:  # noqa: BLE001 - any failure to build or run means "n/a"
        print(f"{label}: n/a ({type(err).__name__}: {err})", file=sys.stderr)
        return row
    row["ms"] = _milliseconds(detect, timing_images[0])
    row["ms_val"] = _mean_milliseconds(detect, timing_images)
    scores = evaluate_detector(pairs, detect)
    row.update(ap50=scores["ap50"], ap50_min20=scores["ap50_min20"])
    row.update({f"recall_{name}": value for name, value in scores["recall"].items()})
    if has_landmarks:
        landmarks = evaluate_landmarks(landmark_items, cuhk_images, detect)
        row.update(nme=landmarks["nme"], detected=landmarks["detected"])
        masked = evaluate_landmarks(
            landmark_items, cuhk_images, detect,
            painter.landmark_item,
        )
        row.update(nme_masked=masked["nme"], detected_masked=masked["detected"])
    print(f"{label}: done", file=sys.stderr)
    return row


COLUMNS = (
    ("detector", "detector", "{}"),
    ("ap50", "AP50", "{:.3f}"),
    ("ap50_min20", "AP50 min20", "{:.3f}"),
    *((f"recall_{name}", f"R {name}", "{:.3f}") for name in FACEMASK_CLASSES),
    ("nme", "cuhk NME", "{:.4f}"),
    ("detected", "cuhk detected", "{:.3f}"),
    ("nme_masked", "cuhk NME masked", "{:.4f}"),
    ("detected_masked", "cuhk detected masked", "{:.3f}"),
    ("ms", "ms 640x480", "{:.1f}"),
    ("ms_val", "ms 640x480 val", "{:.1f}"),
)


SOURCE_COLUMNS = (
    ("source", "source", "{}"),
    ("detector", "detector", "{}"),
    ("ap50_min20", "AP50 min20", "{:.3f}"),
    *((f"recall_{name}", f"R {name}", "{:.3f}") for name in FACEMASK_CLASSES),
    ("precision", "precision", "{:.3f}"),
    ("precision_min20", "P min20", "{:.3f}"),
)
FOUND_COLUMNS = (
    ("detector", "detector", "{}"),
    *((key, header, "{:.3f}") for key, header, _, _ in FOUND_SETS[:4]),
    ("seg_test", "real_dev + ffhq test", "{:.3f}"),
    ("rwmfd", "rwmfd held out", "{:.3f}"),
)


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return fmt.format(value)


def markdown(rows: list[dict], columns: tuple = COLUMNS) -> str:
    return markdown_table(
        [header for _, header, _ in columns],
        ([_cell(row, key, fmt) for key, _, fmt in columns] for row in rows),
        ["left" if key in ("detector", "source") else "right" for key, _, _ in columns],
    )


def previous_ms(path: Path) -> dict[str, dict[str, float]]:
    """The timing columns of the first table of an earlier file written by this script, by
    detector."""
    lines = list(
        itertools.takewhile(
            lambda line: line.startswith("| "),
            itertools.dropwhile(
                lambda line: not line.startswith("| "),
                path.read_text(encoding="utf-8").splitlines(),
            ),
        )
    )
    if not lines:
        return {}
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    columns = {key: header.index(title) for key, title, _ in COLUMNS[-2:] if title in header}
    kept: dict[str, dict[str, float]] = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for key, column in columns.items():
            try:
                kept.setdefault(cells[0], {})[key] = float(cells[column])
            except ValueError:
                pass
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--limit", type=int, help="use only the first N images of each set")
    parser.add_argument(
        "--ours", type=Path, metavar="DIR",
        help=f"run our cascade from DIR ({', '.join(OURS)}; the close-up pass from "
             f"{', '.join(OURS_CLOSE_UP)} where DIR holds them, else from the first three) "
             "instead of the shipped files (a candidate, for a quick check; its boxes are "
             "the cascade's own: masksegx.detect.OUTPUT_CONVENTION was measured for the "
             "shipped nets and applies to them only)",
    )
    parser.add_argument(
        "--only", action="append", metavar="LABEL",
        help="run only the detectors whose label contains this text (repeatable; for a quick "
             "check, not for --out)",
    )
    parser.add_argument(
        "--keep-ms", action="store_true",
        help="take the ms column from the existing --out table (for a rerun on a loaded machine "
             "after a change that leaves the graphs' shapes alone, e.g. retrained weights)",
    )
    args = parser.parse_args()

    facemask = args.data / "det" / "facemask"
    cuhk = args.data / "det" / "cuhk5pt"
    try:
        pairs = split_pairs(voc_pairs(facemask / "images", facemask / "annotations"), "val")
        # Odd 0-based lines only: the even ones train our O-net (masksegx.training.samples).
        landmark_items = read_cuhk(cuhk / "annotations.txt")[1::2]
        if not pairs:
            raise DatasetError(f"no validation images in {str(facemask)!r}")
        if args.limit:
            pairs, landmark_items = pairs[: args.limit], landmark_items[: args.limit]
        timing_images = [cv2.resize(read_image(image), TIMING_SIZE) for image, _ in pairs]
        painter = MaskPainter(args.data / "masktemplates")
        voc_sets = {
            source: split_pairs(
                voc_pairs(args.data / folder / "images", args.data / folder / "annotations"), split
            )[: args.limit]
            for source, folder, split in VOC_SOURCES
        }
        found_sets = {
            key: image_files(args.data / folder, every)[: args.limit]
            for key, _, folder, every in FOUND_SETS
        }
    except DatasetError as err:
        print(f"compare_detectors: error: {err}", file=sys.stderr)
        return 2

    kept = previous_ms(args.out) if args.keep_ms and args.out and args.out.is_file() else {}
    detectors = [
        (label, factory) for label, factory in _detectors(args.data / "models", args.ours)
        if not args.only or any(text in label for text in args.only)
    ]
    rows = [
        _row(label, factory, pairs, landmark_items, cuhk / "images", timing_images, painter)
        for label, factory in detectors
    ]
    per_source = [
        _source_rows(label, factory, voc_sets, found_sets)
        for label, factory in detectors if "onnxruntime" not in label
    ]
    source_rows = sorted(
        (row for voc_rows, _ in per_source for row in voc_rows),
        key=lambda row: [source for source, _, _ in VOC_SOURCES].index(row["source"]),
    )
    for row in rows:
        if kept:
            row.update(dict.fromkeys(("ms", "ms_val")), **kept.get(row["detector"], {}))
    table = markdown(rows)
    note = (
        f"facemask val: {len(pairs)} images; cuhk5pt held-out lines: {len(landmark_items)} faces; "
        f"ms: median of {TIMING_RUNS} calls at {TIMING_SIZE[0]}x{TIMING_SIZE[1]} on the first "
        f"validation image; ms val: mean over the {len(timing_images)} validation images at "
        f"{TIMING_SIZE[0]}x{TIMING_SIZE[1]} (median of 3 calls each); "
        "reference models on 1 onnxruntime thread"
        + (" (kept from the previous run of this script: --keep-ms)." if kept else ".")
    )
    sizes = ", ".join(f"{source} {len(voc_sets[source])}" for source in voc_sets)
    found_sizes = ", ".join(f"{key} {len(found_sets[key])}" for key in found_sets)
    text = "\n\n".join([
        table, note,
        "Per source, each detector at its default thresholds (AP50 min20: faces narrower than "
        "20 px ignored; precision: detections overlapping a labelled face at IoU >= 0.5, P min20: "
        f"the same over detections >= 20 px wide). Images: {sizes}.",
        markdown(source_rows, SOURCE_COLUMNS),
        "Found rate: share of images with at least one detection (every image holds a face). "
        f"Images: {found_sizes} (utkface: every 10th file, the validation files; rwmfd: every "
        f"{_RWMFD_HELD_OUT}th, the part left out of the detector's training).",
        markdown([found for _, found in per_source], FOUND_COLUMNS),
    ])
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
