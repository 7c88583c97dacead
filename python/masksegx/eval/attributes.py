"""Scoring the attribute network: gender accuracy (MTFL, UTKFace; optionally with synthetic
masks), wearing-state accuracy on face-mask detection crops, and the gender-v1 reference.

Splits (issue 4): MTFL validation = every 10th line of the list (lines 10, 20, ... counting from
1); UTKFace validation = every 10th file in sorted name order; UTKFace faces under 10 years are
skipped (and the file without a gender field); facemask validation = images whose number ends
in 1.

Landmarks: the annotation's when the format has them (MTFL), else the package's detector
(:func:`masksegx.detect_faces`): the detection whose box centre is nearest the image centre.
When it finds no face, the mean relative landmarks of the detected images of the same run are
used (UTKFace chips are aligned, so this is a sane fallback); ``n_detected`` counts the rest.

gender-v1 (``shared/data/models/gender-v1.onnx``, dlib's gender classifier): its input is dlib's
32x32 face chip (padding 0.2). dlib derives the chip from its own 5-point shape (eye corners, nose
bottom), which we do not have; we fit the same similarity with our eye centres on the midpoints of
dlib's canonical eye corners and our nose tip on dlib's nose-bottom point (an approximation: the
tip sits slightly above the nose bottom). The chip is extracted at 4x and area-downscaled (dlib
also low-pass filters when shrinking).
"""

from __future__ import annotations

import math
import os
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .._models import onnx_session
from .._validation import check_threads
from ..align import similarity_transform
from ..attributes import FaceAttributes
from ..boxes import iou_exclusive
from .datasets import DatasetError, read_image
from .detection import DetectFn, LandmarkItem, read_mtfl, read_voc, split_pairs, voc_pairs

#: ``predictor(image, landmarks [5, 2]) -> [FaceAttributes]``, as :class:`masksegx.AttributePredictor`.
Predictor = Callable[[np.ndarray, np.ndarray], Sequence[FaceAttributes]]

VALIDATION_EVERY = 10
MIN_UTK_AGE = 10
SPLITS = ("val", "train", "all")
FORMATS = ("mtfl", "utk")
#: facemask classes -> wearing state names.
FACEMASK_WEARING = {"without_mask": "none", "mask_weared_incorrect": "incorrect",
                    "with_mask": "correct"}

#: dlib's canonical 5 points (chip fractions) and what we map onto them (see module docstring).
_DLIB_EYE_IMAGE_LEFT = (np.array([0.1205750620789, 0.2137274526848])
                        + np.array([0.3340850613712, 0.2290642403242])) / 2
_DLIB_EYE_IMAGE_RIGHT = (np.array([0.8595674595992, 0.2134981538014])
                         + np.array([0.6460604764104, 0.2289674387677])) / 2
_DLIB_NOSE = np.array([0.4901123135679, 0.6277975316475])
GENDER_V1_MEAN_RGB = np.array([122.781998, 117.000999, 104.297997], np.float32)


class GenderV1:
    """The gender-v1 reference model in onnxruntime (one thread): ``p_male(image, landmarks)``."""

    SIZE, PADDING, OVERSAMPLE = 32, 0.2, 4

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        if not Path(path).is_file():
            raise DatasetError(f"gender-v1 model not found: {os.fspath(path)!r}")
        self.session = onnx_session(os.path.realpath(path), check_threads(threads), "path")
        self.input = self.session.get_inputs()[0].name
        canonical = np.stack([_DLIB_EYE_IMAGE_LEFT, _DLIB_EYE_IMAGE_RIGHT, _DLIB_NOSE])
        big = self.SIZE * self.OVERSAMPLE
        self.targets = (self.PADDING + canonical) / (2 * self.PADDING + 1) * big

    def chip(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The 32x32 RGB chip (uint8) of one face."""
        matrix = similarity_transform(np.asarray(landmarks, np.float64)[:3], self.targets)
        big = self.SIZE * self.OVERSAMPLE
        crop = cv2.warpAffine(image_bgr, matrix, (big, big), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        small = cv2.resize(crop, (self.SIZE, self.SIZE), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)

    def blob(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        chip = self.chip(image_bgr, landmarks).astype(np.float32)
        return ((chip - GENDER_V1_MEAN_RGB) / 256.0).transpose(2, 0, 1)[None]

    def p_male(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> float:
        probs = self.session.run(None, {self.input: self.blob(image_bgr, landmarks)})[0]
        return float(probs[0, 1])


# --- items -------------------------------------------------------------------------------------


def gender_items(annotations: str | os.PathLike[str], images_dir: str | os.PathLike[str], fmt: str,
                 split: str = "all") -> list[tuple[Path, int, np.ndarray | None]]:
    """``(image path, gender 0 female / 1 male, landmarks [5, 2] or None)`` of a list.

    ``mtfl``: ``annotations`` is the MTFL list. ``utk``: ``annotations`` is a text file of
    UTKFace file names (one per line) or a folder whose ``*.jpg`` files are used; gender from the
    name, ages under 10 skipped.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    root = Path(images_dir)
    if not root.is_dir():
        raise DatasetError(f"images directory not found: {str(root)!r}")
    items: list[tuple[Path, int, np.ndarray | None]] = []
    if fmt == "mtfl":
        for index, item in enumerate(read_mtfl(annotations)):
            if _in_split(index, split):
                gender = {1: 1, 2: 0}.get(item.extra["gender"])
                if gender is None:
                    raise DatasetError(f"{item.path}: MTFL gender must be 1 or 2")
                items.append((root / item.path, gender, item.landmarks))
        return items
    source = Path(annotations)
    if source.is_dir():
        names = sorted(p.name for p in source.iterdir() if p.suffix.lower() == ".jpg")
    elif source.is_file():
        names = sorted(line.strip() for line in source.read_text().splitlines() if line.strip())
    else:
        raise DatasetError(f"annotations not found: {str(source)!r}")
    for index, name in enumerate(names):
        if not _in_split(index, split):
            continue
        fields = name.split("_")
        if len(fields) < 4 or fields[1] not in ("0", "1") or not fields[0].isdigit():
            continue
        if int(fields[0]) < MIN_UTK_AGE:
            continue
        items.append((root / name, 1 - int(fields[1]), None))
    return items


def _in_split(index: int, split: str) -> bool:
    is_val = index % VALIDATION_EVERY == VALIDATION_EVERY - 1
    return split == "all" or is_val == (split == "val")


# --- synthetic masks ---------------------------------------------------------------------------


class MaskPainter:
    """Deterministic synthetic masks for evaluation: image k gets a frontal template, a colour
    and anchor jitter drawn from seed k; worn correctly (coverage 1)."""

    def __init__(self, templates_root: str | os.PathLike[str]) -> None:
        from ..synthesis import frontal, load_templates

        self.templates = frontal(load_templates(templates_root))
        if not self.templates:
            raise DatasetError(f"no mask templates in {os.fspath(templates_root)!r}")

    def __call__(self, image: np.ndarray, landmarks: np.ndarray, seed: int) -> np.ndarray:
        from ..synthesis import apply_mask

        rng = np.random.default_rng([11, seed])
        template = self.templates[int(rng.integers(len(self.templates)))]
        blue, green, red = (float(c) for c in rng.uniform(0, 255, 3))
        color = (blue, green, red)
        masked, _ = apply_mask(image, landmarks, template, color=color, coverage=1.0, rng=rng)
        return masked

    def landmark_item(self, image: np.ndarray, item: LandmarkItem) -> np.ndarray:
        """``prepare`` for :func:`masksegx.eval.detection.evaluate_landmarks`: the annotated
        face of ``item`` (a ``LandmarkItem``) masked, seeded by its image path (the same mask
        on every run)."""
        return self(image, item.landmarks, zlib.crc32(item.path.encode()))


# --- evaluation --------------------------------------------------------------------------------


def nearest_centre_landmarks(found: Sequence[Any], shape: tuple[int, ...]) -> np.ndarray | None:
    """Landmarks of the detection (boxes, scores, landmarks) whose box centre is nearest the
    centre of an image of ``shape``; None without detections."""
    boxes, _, landmarks = found[0], found[1], found[2]
    if len(boxes) == 0:
        return None
    centres = (np.asarray(boxes)[:, :2] + np.asarray(boxes)[:, 2:4]) / 2
    target = np.array([shape[1] / 2, shape[0] / 2])
    return np.asarray(landmarks[int(np.argmin(np.linalg.norm(centres - target, axis=1)))],
                      np.float64)


def evaluate_gender(
    items: Sequence[tuple[Path, int, np.ndarray | None]],
    predictor: Predictor,
    *,
    detect_fn: DetectFn | None = None,
    painter: MaskPainter | None = None,
    reference: GenderV1 | None = None,
) -> dict[str, Any]:
    """Gender accuracy of ``predictor`` (an :class:`masksegx.AttributePredictor`) on ``items``.

    Returns ``gender_acc``, ``gender_acc_female``, ``gender_acc_male``, ``n_images``,
    ``n_detected`` (faces whose landmarks came from the annotation or the detector),
    ``ms_per_face`` (attribute net incl. alignment), mean expected ``coverage`` and the share per
    wearing state; with ``reference`` also ``reference`` = the same scores of gender-v1 on the
    same (masked) faces and landmarks.
    """
    if not items:
        raise DatasetError("no gender-labelled faces to evaluate")
    images, points, detected = [], [], []
    for path, _, landmarks in items:
        image = read_image(path)
        if landmarks is None:
            if detect_fn is None:
                raise DatasetError("the format has no landmarks and no detector was given")
            landmarks = nearest_centre_landmarks(detect_fn(image), image.shape)
        detected.append(landmarks is not None)
        images.append(image)
        points.append(landmarks)
    relative = [p / np.array([im.shape[1], im.shape[0]])
                for p, im in zip(points, images) if p is not None]
    mean_relative = np.mean(relative, axis=0) if relative else None
    genders = np.array([g for _, g, _ in items])
    ours, theirs, coverage, wearing, seconds = [], [], [], [], 0.0
    for k, (image, landmarks) in enumerate(zip(images, points)):
        if landmarks is None:
            if mean_relative is None:
                raise DatasetError("the detector found no face in any image")
            landmarks = mean_relative * np.array([image.shape[1], image.shape[0]])
        if painter is not None:
            try:
                image = painter(image, landmarks, k)
            except ValueError:
                pass  # degenerate landmarks: evaluate unmasked
        start = time.perf_counter()
        face = predictor(image, landmarks)[0]
        seconds += time.perf_counter() - start
        ours.append(face.gender_prob)
        coverage.append(face.coverage)
        wearing.append(face.wearing)
        if reference is not None:
            theirs.append(reference.p_male(image, landmarks))
    result: dict[str, Any] = _accuracies(np.array(ours), genders)
    result.update({
        "n_images": len(items), "n_detected": int(np.sum(detected)),
        "ms_per_face": 1000.0 * seconds / len(items),
        "coverage_mean": float(np.mean(coverage)),
        "wearing_share": {state: float(np.mean([w == state for w in wearing]))
                          for state in ("none", "incorrect", "correct")},
    })
    if reference is not None:
        result["reference"] = _accuracies(np.array(theirs), genders)
    return result


def _accuracies(p_male: np.ndarray, genders: np.ndarray) -> dict[str, float]:
    correct = (p_male > 0.5).astype(int) == genders
    out = {"gender_acc": float(correct.mean())}
    for value, name in ((0, "female"), (1, "male")):
        chosen = genders == value
        out[f"gender_acc_{name}"] = float(correct[chosen].mean()) if chosen.any() else math.nan
    return out


def facemask_faces(
    images_dir: str | os.PathLike[str],
    annotations_dir: str | os.PathLike[str],
    split: str,
    landmark_fn: Callable[[np.ndarray, np.ndarray], np.ndarray | None],
) -> tuple[list[tuple[np.ndarray, np.ndarray, str]], int]:
    """``(image, landmarks, wearing state)`` of the annotated faces of a split (of
    :func:`masksegx.eval.detection.split_pairs`: ``val`` for det/facemask, ``ilc-val`` for
    det/ilc2021; facemask class names) whose landmarks ``landmark_fn(image, box)`` finds, and
    the number of faces it missed."""
    faces: list[tuple[np.ndarray, np.ndarray, str]] = []
    missed = 0
    for image_path, xml in split_pairs(voc_pairs(images_dir, annotations_dir), split):
        image = read_image(image_path)
        for box, name in read_voc(xml):
            landmarks = landmark_fn(image, box)
            if landmarks is None:
                missed += 1
                continue
            faces.append((image, landmarks, FACEMASK_WEARING[name]))
    return faces, missed


def neighbourhood_landmarks(detect_fn: DetectFn, image: np.ndarray, box: Sequence[float] | np.ndarray,
                            match_iou: float = 0.3) -> np.ndarray | None:
    """Landmarks of the annotated face ``box`` (x1, y1, x2, y2): ``detect_fn`` (returning boxes,
    scores, landmarks) runs on the box grown by its side on each side (small faces get enlarged
    by detectors with a fixed input); the detection overlapping the box most, if its IoU >=
    ``match_iou``; None otherwise."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(max(0, np.floor(cx - side))), int(max(0, np.floor(cy - side)))
    right = int(min(image.shape[1], np.ceil(cx + side)))
    bottom = int(min(image.shape[0], np.ceil(cy + side)))
    if right - left < 4 or bottom - top < 4:
        return None
    boxes, _, points = detect_fn(np.ascontiguousarray(image[top:bottom, left:right]))[:3]
    if len(boxes) == 0 or points is None:
        return None
    local = np.array([[x1 - left, y1 - top, x2 - left, y2 - top]])
    overlaps = iou_exclusive(local, np.asarray(boxes, np.float64))[0]
    best = int(np.argmax(overlaps))
    if overlaps[best] < match_iou:
        return None
    return np.asarray(points[best], np.float64) + np.array([left, top], np.float64)


def evaluate_wearing(
    faces: Sequence[tuple[np.ndarray, np.ndarray, str]], predictor: Predictor, missed: int = 0
) -> dict[str, Any]:
    """Wearing-state accuracy (overall and per class) and a confusion table (rows: truth)."""
    if not faces:
        raise DatasetError("no facemask faces to evaluate")
    states = ("none", "incorrect", "correct")
    confusion = {t: {p: 0 for p in states} for t in states}
    for image, landmarks, truth in faces:
        confusion[truth][predictor(image, landmarks)[0].wearing] += 1
    total = sum(sum(row.values()) for row in confusion.values())
    correct = sum(confusion[s][s] for s in states)
    return {
        "wearing_acc": correct / total,
        "wearing_recall": {s: (confusion[s][s] / sum(confusion[s].values())
                               if sum(confusion[s].values()) else math.nan) for s in states},
        "confusion": confusion, "n_faces": total, "n_missed": missed,
    }


def evaluate_attributes(
    annotations: str | os.PathLike[str],
    images: str | os.PathLike[str],
    fmt: str,
    split: str = "all",
    *,
    model: str | os.PathLike[str] | None = None,
    mirror: bool = True,
    templates: str | os.PathLike[str] | None = None,
    reference: str | os.PathLike[str] | None = None,
    facemask: str | os.PathLike[str] | None = None,
    ilc: str | os.PathLike[str] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """The record ``masksegx eval-attr`` prints and writes: the attribute network's gender
    scores on the faces of :func:`gender_items` (with a synthetic mask on each when
    ``templates`` is given; beside gender-v1 when ``reference`` is its .onnx), and with
    ``facemask`` (a det/facemask folder) the wearing-state scores on its validation crops
    (``wearing``), with ``ilc`` (a det/ilc2021 folder, same classes) those of its validation
    crops (names ending in 0 or 1; ``wearing_ilc``); crop landmarks come from RetinaFace in
    ``models_dir`` or else from the package's detector. ``limit`` keeps the first faces only."""
    from ..attributes import AttributePredictor
    from ..detect import detect_faces
    from .reference_detectors import make_detector

    predictor = AttributePredictor(model, threads=1, mirror=mirror)
    items = gender_items(annotations, images, fmt, split)
    if limit is not None:
        items = items[:limit]

    def detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # The face nearest the centre by the cascade's own box, as the training cache picks it.
        found = detect_faces(image, calibrated_boxes=False)
        return found.boxes, found.scores, found.landmarks

    summary = evaluate_gender(
        items, predictor, detect_fn=detect,
        painter=MaskPainter(templates) if templates is not None else None,
        reference=GenderV1(reference) if reference is not None else None,
    )
    landmark_detector = make_detector("retinaface", models_dir) if models_dir else detect
    for key, folder, split in (("wearing", facemask, "val"), ("wearing_ilc", ilc, "ilc-val")):
        if folder is None:
            continue
        faces, missed = facemask_faces(
            os.path.join(folder, "images"), os.path.join(folder, "annotations"), split,
            lambda image, box: neighbourhood_landmarks(landmark_detector, image, box),
        )
        summary[key] = evaluate_wearing(faces, predictor, missed)
    return {"format": fmt, "split": split, "synthetic_mask": templates is not None,
            "mirror": mirror, "model": predictor.model_path, **summary}
