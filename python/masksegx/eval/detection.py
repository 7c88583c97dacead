"""Evaluation of face detectors: boxes (Pascal VOC folders) and 5 landmarks (CUHK, MTFL lists).

Conventions, used by every function here:

- A box is ``(x1, y1, x2, y2)`` in pixels, continuous coordinates: its width is ``x2 - x1``
  and its area ``(x2 - x1) * (y2 - y1)`` (no ``+ 1``, unlike the VOC devkit; the exclusive-end
  convention of :mod:`masksegx.boxes`, whose :func:`~masksegx.boxes.iou_exclusive` is
  ``box_iou`` here). VOC's integer
  ``xmin..xmax`` are taken as these continuous coordinates unchanged.
- IoU = intersection area / union area; 0 when the union is empty.

**Average precision** (:func:`average_precision`) follows the Pascal VOC devkit (2010 and
later), with ``ignore`` boxes playing the role of VOC's "difficult" boxes:

1. All detections of all images are sorted by descending score (a stable sort: ties keep image
   order, then the detector's own order).
2. Each detection, in that order, is compared with every ground-truth box of its image. Let
   ``best`` be the box of highest IoU (the first one on ties). If ``IoU(best) < iou`` the
   detection is a false positive. Otherwise: if ``best`` is an ignore box the detection counts
   neither way (it is dropped from the ranking); if ``best`` is not matched yet the detection is
   a true positive and ``best`` becomes matched; if it was matched already the detection is a
   false positive (a duplicate). Each ground-truth box is thus matched at most once.
3. Precision and recall are taken after each detection (recall = TP / number of non-ignore
   ground-truth boxes). AP is the area under the monotone precision envelope, all points
   (``p_interp(r) = max_{r' >= r} p(r')``, summed over the recall steps).

With ``ignore_smaller_than=w``, ground-truth boxes narrower than ``w`` pixels
(``x2 - x1 < w``) are the ignore boxes. AP is NaN when there is no non-ignore ground truth.

**Recall per class** (:func:`class_recall`): the same matching (no ignore boxes) over all the
detections the detector returned (it applied its own score threshold); the recall of a class is
its matched ground-truth boxes over its ground-truth boxes (NaN for a class that never occurs).

**Precision** (:func:`precision`): the share of the returned detections (optionally only those
at least ``min_width`` pixels wide) whose box overlaps some ground-truth box at IoU >= 0.5
(duplicates count as hits; detections of unlabelled faces count against it).

**Found rate** (:func:`evaluate_found`), for folders without boxes where every image holds at
least one face: the share of images where the detector returns at least one face.

**Landmarks** (:func:`evaluate_landmarks`): one ground-truth face per image, 5 points (left eye,
right eye, nose, left mouth corner, right mouth corner; "left" = image left).

- With a ground-truth box (CUHK): the detection of highest IoU with it is the match, provided
  that IoU is at least 0.4.
- Without a box (MTFL): among the detections whose box contains both ground-truth eye centres
  (borders included), the match is the one whose landmark centroid is nearest the ground-truth
  centroid (mean of the 5 points).
- ``detected`` = matched images / images. ``nme`` = mean over matched images of
  (mean over the 5 points of the Euclidean point error) / inter-ocular distance, the distance
  between the ground-truth left and right eye centres. NaN when nothing was matched.
"""

from __future__ import annotations

import math
import os
import re
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..boxes import as_boxes, iou_exclusive
from ..io import IMAGE_SUFFIXES, DatasetError, read_image

#: The classes of ``det/facemask`` (Kaggle "Face Mask Detection").
FACEMASK_CLASSES = ("with_mask", "without_mask", "mask_weared_incorrect")
#: The validation split of ``det/facemask``: images whose number ends in this digit.
VALIDATION_DIGIT = "1"
#: The validation split of ``det/ilc2021``: images whose name (an md5 hex string) ends in one of
#: these characters (the data README's suggestion).
ILC_VALIDATION_ENDINGS = ("0", "1")
SPLITS = ("val", "train", "ilc-val", "ilc-train", "all")
#: Minimum IoU between the ground-truth box and a detection for a CUHK landmark match.
LANDMARK_MATCH_IOU = 0.4

#: ``detect_fn(image_bgr) -> (boxes [N,4], scores [N])`` or ``(boxes, scores, landmarks [N,5,2])``.
DetectFn = Callable[[np.ndarray], Sequence[Any]]


#: The IoU of this module's convention (the name training and tools import from here).
box_iou = iou_exclusive


class LandmarkItem(NamedTuple):
    """One annotated face of a landmark list."""

    #: Image path relative to the images folder, forward slashes.
    path: str
    #: Face box ``(x1, y1, x2, y2)`` (float64), or None when the list has none (MTFL).
    box: np.ndarray | None
    #: float64 [5, 2] (x, y): left eye, right eye, nose, left mouth corner, right mouth corner.
    landmarks: np.ndarray
    #: Extra per-face labels (MTFL: ``gender``, ``smile``, ``glasses``, ``pose``), else empty.
    extra: dict[str, Any]


# --- Pascal VOC ------------------------------------------------------------------------------


def read_voc(path: str | os.PathLike[str]) -> list[tuple[np.ndarray, str]]:
    """The objects of a Pascal VOC xml file as ``(box float64 [4], class name)``, file order.

    Leading blank lines (the facemask files start with one) are skipped; DatasetError if the
    file is unreadable, not XML, or an object lacks its name or a box coordinate.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise DatasetError(f"cannot read annotation {os.fspath(path)!r}: {err}") from err
    try:
        # An XML declaration must be the very first characters, hence the strip.
        root = ElementTree.fromstring(text.lstrip())
    except ElementTree.ParseError as err:
        raise DatasetError(f"annotation {os.fspath(path)!r} is not valid XML: {err}") from err
    objects = []
    for item in root.iter("object"):
        name = (item.findtext("name") or "").strip()
        try:
            box = np.array(
                [float(item.findtext(f"bndbox/{key}") or "") for key in ("xmin", "ymin", "xmax", "ymax")]
            )
        except (TypeError, ValueError):
            box = None
        if not name or box is None:
            raise DatasetError(
                f"annotation {os.fspath(path)!r}: an object lacks its name or a bndbox coordinate"
            )
        objects.append((box, name))
    return objects


def _existing_dir(folder: str | os.PathLike[str], role: str) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise DatasetError(f"{role} directory not found: {str(path)!r}")
    return path


def voc_pairs(
    images_dir: str | os.PathLike[str], annotations_dir: str | os.PathLike[str]
) -> list[tuple[Path, Path]]:
    """``(image, annotation)`` pairs by file stem (``x.jpg`` with ``x.xml``), sorted by name.

    Images without an annotation file are left out; DatasetError on a missing directory.
    """
    images = _existing_dir(images_dir, "images")
    annotations = _existing_dir(annotations_dir, "annotations")
    xml_by_stem = {p.stem: p for p in annotations.iterdir() if p.suffix.lower() == ".xml"}
    pairs = [
        (image, xml_by_stem[image.stem])
        for image in images.iterdir()
        if image.suffix.lower() in IMAGE_SUFFIXES and image.stem in xml_by_stem
    ]
    return sorted(pairs, key=lambda pair: pair[0].name)


def is_ilc_validation(path: str | os.PathLike[str]) -> bool:
    """det/ilc2021 validation rule: the file stem ends in 0 or 1."""
    return Path(path).stem.endswith(ILC_VALIDATION_ENDINGS)


def split_pairs(pairs: Sequence[tuple[Path, Path]], split: str) -> list[tuple[Path, Path]]:
    """The ``val``, ``train``, ``ilc-val``, ``ilc-train`` or ``all`` part of VOC pairs.

    ``val`` = images whose file stem ends in a number ending in 1 (``maksssksksss11``), the
    facemask validation split of issue 3; ``train`` = the other images. DatasetError for a stem
    without a trailing number (for those two splits). ``ilc-val`` = images whose stem ends in 0
    or 1 (det/ilc2021's md5 names, :func:`is_ilc_validation`); ``ilc-train`` = the others.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    if split == "all":
        return list(pairs)
    if split.startswith("ilc-"):
        return [pair for pair in pairs if is_ilc_validation(pair[0]) == (split == "ilc-val")]
    chosen = []
    for image, annotation in pairs:
        number = re.search(r"(\d+)$", Path(image).stem)
        if number is None:
            raise DatasetError(f"cannot split {str(image)!r}: its name does not end in a number")
        if (number.group(1).endswith(VALIDATION_DIGIT)) == (split == "val"):
            chosen.append((image, annotation))
    return chosen


# --- average precision and recall ------------------------------------------------------------


def _as_detections(
    detections_per_image: Sequence[Any], count: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(detections_per_image) != count:
        raise ValueError(
            f"detections_per_image: {len(detections_per_image)} images, ground truth has {count}"
        )
    out = []
    for k, detection in enumerate(detections_per_image):
        boxes = as_boxes(detection[0], f"detections_per_image[{k}] boxes")
        scores = np.asarray(detection[1], dtype=np.float64).reshape(-1)
        if scores.shape[0] != boxes.shape[0]:
            raise ValueError(
                f"detections_per_image[{k}]: {boxes.shape[0]} boxes but {scores.shape[0]} scores"
            )
        out.append((boxes, scores))
    return out


def match_detections(
    detections: list[tuple[np.ndarray, np.ndarray]],
    truths: list[np.ndarray],
    ignores: list[np.ndarray],
    iou: float,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """VOC greedy matching (module docstring, steps 1-2): ``detections`` holds per image
    ``(boxes, scores)``, ``truths`` the labelled boxes, ``ignores`` which of them count as
    neither hit nor miss (e.g. faces under a minimum size), ``iou`` the overlap that matches.

    Returns the outcome per detection in descending-score order (1 = TP, 0 = FP, -1 = ignored)
    and, per image, which ground-truth boxes were matched.
    """
    image_of = np.concatenate([np.full(len(s), k) for k, (_, s) in enumerate(detections)])
    index_in_image = np.concatenate([np.arange(len(s)) for _, s in detections])
    scores = np.concatenate([s for _, s in detections])
    order = np.argsort(-scores, kind="stable")
    ious = [box_iou(boxes, truth) for (boxes, _), truth in zip(detections, truths)]
    matched = [np.zeros(len(truth), dtype=bool) for truth in truths]
    outcome = np.zeros(len(order), dtype=np.int8)
    for rank, det in enumerate(order):
        image, row = image_of[det], index_in_image[det]
        if ious[image].shape[1] == 0:
            continue  # outcome 0: false positive
        best = int(np.argmax(ious[image][row]))
        if ious[image][row, best] < iou:
            continue
        if ignores[image][best]:
            outcome[rank] = -1
        elif not matched[image][best]:
            outcome[rank] = 1
            matched[image][best] = True
    return outcome, matched


def _envelope_area(outcome: np.ndarray, positives: int) -> float:
    """All-point VOC AP from the ranked outcomes (module docstring, step 3)."""
    if positives == 0:
        return math.nan
    kept = outcome[outcome >= 0]
    tp = np.cumsum(kept == 1)
    fp = np.cumsum(kept == 0)
    recall = np.concatenate([[0.0], tp / positives, [1.0]])
    precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def average_precision(
    detections_per_image: Sequence[Any],
    ground_truth_per_image: Sequence[Any],
    iou: float = 0.5,
    ignore_smaller_than: float | None = None,
) -> float:
    """VOC all-point average precision of a detector over a dataset (see the module docstring).

    Parameters
    ----------
    detections_per_image : sequence of ``(boxes [N,4], scores [N])``, one per image (N may be 0;
        extra tuple items such as landmarks are ignored).
    ground_truth_per_image : sequence of box arrays [M,4] in the same image order.
    iou : minimum IoU of a match, in (0, 1].
    ignore_smaller_than : ground-truth boxes narrower than this many pixels are ignore boxes
        (detections matching them count neither way; they are not positives). None: no ignores.

    Returns
    -------
    AP in [0, 1]; NaN when there is no non-ignore ground-truth box.
    """
    truths = [
        as_boxes(t, f"ground_truth_per_image[{k}]") for k, t in enumerate(ground_truth_per_image)
    ]
    detections = _as_detections(detections_per_image, len(truths))
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou: expected a value in (0, 1], got {iou}")
    if ignore_smaller_than is None:
        ignores = [np.zeros(len(t), dtype=bool) for t in truths]
    else:
        ignores = [(t[:, 2] - t[:, 0]) < ignore_smaller_than for t in truths]
    if not truths:
        return math.nan
    outcome, _ = match_detections(detections, truths, ignores, iou)
    positives = sum(int(np.count_nonzero(~ignore)) for ignore in ignores)
    return _envelope_area(outcome, positives)


def class_recall(
    detections_per_image: Sequence[Any],
    labelled_truth_per_image: Sequence[Sequence[tuple[np.ndarray, str]]],
    iou: float = 0.5,
    classes: Sequence[str] = FACEMASK_CLASSES,
) -> dict[str, float]:
    """Recall per ground-truth class: matched boxes of the class / boxes of the class.

    ``labelled_truth_per_image`` holds :func:`read_voc` lists. Matching as for AP with no ignore
    boxes; every returned detection is used. NaN for a class with no box; classes not in
    ``classes`` are matched (they can take a detection) but not reported.
    """
    truths = [
        as_boxes([box for box, _ in objects], f"labelled_truth_per_image[{k}]")
        for k, objects in enumerate(labelled_truth_per_image)
    ]
    detections = _as_detections(detections_per_image, len(truths))
    if not truths:
        return {name: math.nan for name in classes}
    _, matched = match_detections(detections, truths, [np.zeros(len(t), dtype=bool) for t in truths], iou)
    found = {name: 0 for name in classes}
    total = {name: 0 for name in classes}
    for objects, hits in zip(labelled_truth_per_image, matched):
        for (_, name), hit in zip(objects, hits):
            if name in total:
                total[name] += 1
                found[name] += int(hit)
    return {name: found[name] / total[name] if total[name] else math.nan for name in classes}


def precision(
    detections_per_image: Sequence[Any],
    ground_truth_per_image: Sequence[Any],
    iou: float = 0.5,
    min_width: float = 0.0,
) -> float:
    """Share of the detections at least ``min_width`` pixels wide whose box has IoU >= ``iou``
    with some ground-truth box of its image; NaN when there is no such detection."""
    truths = [
        as_boxes(t, f"ground_truth_per_image[{k}]") for k, t in enumerate(ground_truth_per_image)
    ]
    detections = [
        boxes[boxes[:, 2] - boxes[:, 0] >= min_width]
        for boxes, _ in _as_detections(detections_per_image, len(truths))
    ]
    total = sum(len(boxes) for boxes in detections)
    if total == 0:
        return math.nan
    hits = sum(
        int(np.count_nonzero(box_iou(boxes, truth).max(axis=1) >= iou))
        for boxes, truth in zip(detections, truths)
        if len(boxes) and len(truth)
    )
    return hits / total


def _timed(detect_fn: DetectFn, image: np.ndarray) -> tuple[Sequence[Any], float]:
    start = time.perf_counter()
    result = detect_fn(image)
    return result, time.perf_counter() - start


def evaluate_detector(
    pairs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    detect_fn: DetectFn,
    *,
    iou: float = 0.5,
    min_width: float = 20,
    classes: Sequence[str] = FACEMASK_CLASSES,
) -> dict[str, Any]:
    """Score ``detect_fn`` (BGR uint8 image -> ``(boxes, scores[, landmarks])``) on VOC pairs.

    Returns ``{"ap50", "ap50_min20", "recall": {class: recall}, "precision", "n_images",
    "precision_min20", "ms_per_image"}``: AP at ``iou`` over all boxes, AP with boxes narrower
    than ``min_width`` ignored, the recall per class (:func:`class_recall`), the precision
    (:func:`precision`) over all detections and over those at least ``min_width`` wide, and the
    mean wall time of ``detect_fn`` alone in ms.
    DatasetError when there are no pairs.
    """
    if not pairs:
        raise DatasetError("no image/annotation pairs to evaluate")
    detections, labelled, seconds = [], [], 0.0
    for image_path, annotation_path in pairs:
        labelled.append(read_voc(annotation_path))
        result, elapsed = _timed(detect_fn, read_image(image_path))
        detections.append((result[0], result[1]))
        seconds += elapsed
    truths = [[box for box, _ in objects] for objects in labelled]
    return {
        "ap50": average_precision(detections, truths, iou),
        "ap50_min20": average_precision(detections, truths, iou, ignore_smaller_than=min_width),
        "recall": class_recall(detections, labelled, iou, classes),
        "precision": precision(detections, truths, iou),
        "precision_min20": precision(detections, truths, iou, min_width),
        "n_images": len(pairs),
        "ms_per_image": 1000.0 * seconds / len(pairs),
    }


# --- found rate ----------------------------------------------------------------------------


def image_files(folder: str | os.PathLike[str], every: int = 1) -> list[Path]:
    """The images under ``folder`` (sub-folders included), sorted by relative path; with
    ``every`` = n > 1 only every n-th of them from index n - 1 (UTKFace's validation rule with
    n = 10). DatasetError on a missing folder."""
    root = _existing_dir(folder, "images")
    found = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    return found[every - 1 :: every]


def evaluate_found(
    images: Sequence[str | os.PathLike[str]], detect_fn: DetectFn
) -> dict[str, Any]:
    """Found rate of ``detect_fn`` on images that each hold at least one face.

    Returns ``{"found_rate", "n_found", "n_images", "ms_per_image"}``: the share of images with
    at least one detection, their count, the image count and the mean wall time of
    ``detect_fn`` alone in ms. DatasetError when there are no images.
    """
    if not images:
        raise DatasetError("no images to evaluate")
    found, seconds = 0, 0.0
    for path in images:
        result, elapsed = _timed(detect_fn, read_image(path))
        found += int(len(result[1]) > 0)
        seconds += elapsed
    return {
        "found_rate": found / len(images),
        "n_found": found,
        "n_images": len(images),
        "ms_per_image": 1000.0 * seconds / len(images),
    }


# --- landmarks -------------------------------------------------------------------------------


def _read_lines(path: str | os.PathLike[str], columns: int) -> list[tuple[int, list[str]]]:
    """Non-blank lines of a space-separated list as (line number, fields); DatasetError on a
    missing file or a line with the wrong field count."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise DatasetError(f"cannot read annotations {os.fspath(path)!r}: {err}") from err
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != columns:
            raise DatasetError(
                f"{os.fspath(path)}:{number}: expected {columns} fields, got {len(fields)}"
            )
        rows.append((number, fields))
    return rows


def _floats(path: str | os.PathLike[str], number: int, fields: Sequence[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in fields])
    except ValueError as err:
        raise DatasetError(f"{os.fspath(path)}:{number}: {err}") from err


def read_cuhk(annotations_file: str | os.PathLike[str]) -> list[LandmarkItem]:
    """Read a CUHK list: ``path left right top bottom x1 y1 ... x5 y5`` (landmarks interleaved).

    The box is returned as ``(left, top, right, bottom)``; ``extra`` is empty.
    """
    items = []
    for number, fields in _read_lines(annotations_file, 15):
        values = _floats(annotations_file, number, fields[1:])
        left, right, top, bottom = values[:4]
        box = np.array([left, top, right, bottom])
        items.append(LandmarkItem(fields[0], box, values[4:].reshape(5, 2), {}))
    return items


#: The label columns of an MTFL line, in order (values as in the source: 1/2, pose 1-5).
MTFL_LABELS = ("gender", "smile", "glasses", "pose")


def read_mtfl(annotations_file: str | os.PathLike[str]) -> list[LandmarkItem]:
    """Read an MTFL list: ``path x1..x5 y1..y5 gender smile glasses pose`` (NOT interleaved).

    ``box`` is None; ``extra`` maps :data:`MTFL_LABELS` to their integer values.
    """
    items = []
    for number, fields in _read_lines(annotations_file, 15):
        values = _floats(annotations_file, number, fields[1:])
        points = np.stack([values[0:5], values[5:10]], axis=1)
        extra = {name: int(v) for name, v in zip(MTFL_LABELS, values[10:])}
        items.append(LandmarkItem(fields[0].replace("\\", "/"), None, points, extra))
    return items


def _pick_detection(item: LandmarkItem, boxes: np.ndarray, landmarks: np.ndarray) -> int | None:
    """Index of the detection matching ``item`` (module docstring), or None."""
    if len(boxes) == 0:
        return None
    if item.box is not None:
        overlaps = box_iou(item.box[None], boxes)[0]
        best = int(np.argmax(overlaps))
        return best if overlaps[best] >= LANDMARK_MATCH_IOU else None
    eyes = item.landmarks[:2]
    contains = np.all(
        (boxes[:, None, 0] <= eyes[None, :, 0])
        & (eyes[None, :, 0] <= boxes[:, None, 2])
        & (boxes[:, None, 1] <= eyes[None, :, 1])
        & (eyes[None, :, 1] <= boxes[:, None, 3]),
        axis=1,
    )
    candidates = np.flatnonzero(contains)
    if len(candidates) == 0:
        return None
    distance = np.linalg.norm(
        landmarks[candidates].mean(axis=1) - item.landmarks.mean(axis=0), axis=1
    )
    return int(candidates[np.argmin(distance)])


def normalised_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean Euclidean error of the 5 points over the inter-ocular distance of ``truth`` (the
    distance between its points 0 and 1, the eye centres)."""
    inter_ocular = float(np.linalg.norm(truth[0] - truth[1]))
    if inter_ocular == 0.0:
        raise ValueError("truth: the two eye centres coincide (inter-ocular distance 0)")
    return float(np.linalg.norm(predicted - truth, axis=1).mean()) / inter_ocular


def evaluate_landmarks(
    items: Sequence[LandmarkItem],
    images_dir: str | os.PathLike[str],
    detect_fn: DetectFn,
    prepare: Callable[[np.ndarray, LandmarkItem], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Score the 5 landmarks of ``detect_fn`` (returning ``(boxes, scores, landmarks [N,5,2])``).

    ``prepare(image, item)``, when given, changes each image before detection (for instance puts
    a synthetic mask on the annotated face); the annotations stay as they are.
    Returns ``{"detected", "nme", "n_images"}`` as defined in the module docstring.
    DatasetError when there are no items, an image is unreadable, or the detector gives no
    landmarks.
    """
    if not items:
        raise DatasetError("no landmark annotations to evaluate")
    root = _existing_dir(images_dir, "images")
    errors = []
    for item in items:
        image = read_image(root / item.path)
        result = detect_fn(prepare(image, item) if prepare else image)
        boxes = as_boxes(result[0])
        landmarks = result[2] if len(result) > 2 else None
        if landmarks is None:
            raise DatasetError("the detector returns no landmarks")
        landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
        best = _pick_detection(item, boxes, landmarks)
        if best is not None:
            errors.append(normalised_error(landmarks[best], item.landmarks))
    return {
        "detected": len(errors) / len(items),
        "nme": float(np.mean(errors)) if errors else math.nan,
        "n_images": len(items),
    }
