"""MTCNN training samples: square crops labelled by IoU with the ground-truth faces.

Kinds and labels (Zhang et al. 2016), IoU of the crop with the face box:

- positive (label 1): IoU >= 0.65 with a face;
- part (label -1): 0.4 <= IoU < 0.65 with a face;
- negative (label 0): IoU < 0.3 with every face of the image;
- landmark (label 1 and ``has_landmarks``): a positive crop of a face with 5 landmarks, all five
  inside the crop.

Crops in between (0.3..0.4) are dropped. Positive and part crops are drawn around a face (side in
``[0.8 min(w, h), 1.25 max(w, h)]``, centre moved by up to 0.2 of the face size); negatives are
random squares anywhere (side from 12 px to half the short image side) or near a face (same sides,
shifted by up to the crop side) to make them harder. Half of all crops (chosen by the seed) are
mirrored left-right: box and landmarks are mirrored exactly in pixels and the left/right eyes and
mouth corners swap, so the faces are also seen the other way round.

Geometry (the cascade's convention, shared with facenet-pytorch's MTCNN): boxes are inclusive
pixel boxes ``[x1, y1, x2, y2]``; a crop of side ``S`` at ``(x, y)`` covers pixels ``x .. x+S-1``
and is the box ``[x, y, x+S-1, y+S-1]``. Regression targets are ``(face - crop) / S`` for each
of the 4 coordinates. Landmarks are ``x1..x5, y1..y5`` with ``l = (p - crop_origin) / S``: the
cascade (facenet-pytorch's 1-based boxes) crops from pixel ``box_x1 - 1``, so its
``p = box_x1 + S l - 1`` maps them back. (Sample format 3; earlier formats added 1 to ``p`` and
put every landmark of a net trained on them 1 px right of and below the truth.) Pixels outside
the image are black. Crops are resized to the stage's side (12, 24 or 48) with area
interpolation when shrinking, bilinear when enlarging, and stored as RGB uint8.

Sources (``data`` = the shared data folder):

- ``det/facemask``: boxes of all faces (masked or not) in multi-face photos: positives, parts and
  the random negatives. Images whose number ends in 1 are the validation split.
- ``det/cuhk5pt``: box + 5 landmarks, one face per image. Lines with an odd 0-based index are
  held out for validation (they stay unseen for the landmark NME evaluation).
- ``attr/mtfl_train``: 5 landmarks only (1-based in the list, made 0-based here); the box is
  :func:`masksegx.synthesis.estimate_face_box` (midline +- 1.15 inter-ocular distances, from 0.85
  eye-to-mouth heights above the eyes to 1.55 below). All lines are training data.

cuhk5pt and mtfl faces give positives, parts and landmark samples but no negatives (only the one
face of each photo is annotated). Half of them (chosen by the seed) wear a synthetic mask
(:func:`masksegx.synthesis.apply_mask`, a random frontal template, coverage 0.85..1 so nose and
mouth stay covered, random colour half of the time): masked positives and landmark samples.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import numpy.typing as npt

from ..boxes import iou_inclusive
from ..eval.detection import image_files, is_ilc_validation, read_voc
from ..io import read_image
from ..synthesis import MaskTemplate, apply_mask, estimate_face_box, frontal, load_templates
from . import box_conventions

LABEL_POSITIVE, LABEL_NEGATIVE, LABEL_PART = 1, 0, -1
POSITIVE_IOU, PART_IOU, NEGATIVE_IOU = 0.65, 0.4, 0.3
#: Faces narrower or shorter than this give no positive/part/landmark crops (still block negatives).
MIN_FACE_SIDE = 12
MIN_CROP_SIDE = 12
MASKED_FRACTION = 0.5
MIRRORED_FRACTION = 0.5
#: Landmark order x1..x5 after a left-right mirror: the eyes and the mouth corners swap.
MIRRORED_LANDMARKS = [1, 0, 2, 4, 3]
SHARD_SIZE = 20000
#: Share of the single-face images cut into their face (augmented samples only).
ZOOM_IN_FRACTION = 0.5
#: How far each side of a zoom-in window lies inside the face box, as a fraction of the face's
#: size (negative: outside); real tight crops cut up to about a third of the face.
ZOOM_IN_RANGE = (-0.1, 0.35)
#: Probability of each photometric change (augmented samples only).
PHOTOMETRIC_PROBABILITY = 0.2
#: Share of the negative crops that overhang the image's edge (``"border"`` augmentation).
BORDER_NEGATIVE_FRACTION = 0.3
#: The largest of those crops, as a multiple of the image's shorter side.
BORDER_NEGATIVE_LARGEST = 1.5
#: Share of the negative crops that are squares around the image's centre at least as large
#: as its shorter side (``"frame"`` augmentation) ...
FRAME_NEGATIVE_FRACTION = 0.15
#: ... with sides from one to this many times the shorter side ...
FRAME_NEGATIVE_LARGEST = 2.0
#: ... and centres up to this share of the side away from the image's centre.
FRAME_NEGATIVE_SHIFT = 0.3
#: The augmentations :func:`generate` can apply: zoom-in (:func:`_zoom_in`) on the zoomable
#: images, photometric changes (:func:`_photometric`), negatives that overhang the image's
#: edge (:func:`_border_negative_crops`), zoom-in on the real photos with one face
#: (``"realzoom"``: det/facemask and det/ilc2021, whose faces wear real masks; a zoomed photo
#: gives no negatives), and frame-filling negatives (:func:`_frame_negative_crops`).
AUGMENTATIONS = ("zoom", "photometric", "border", "realzoom", "frame")
#: What ``--augment`` alone applies: the kinds of the runs made before ``"border"`` existed.
DEFAULT_AUGMENTATIONS = ("zoom", "photometric")

#: A detector for hard-negative mining: RGB uint8 image -> boxes float [M, 4].
Detector = Callable[[np.ndarray], npt.NDArray[np.float64]]
#: A teacher for pseudo-labels: image path -> (boxes float [M, 4] inclusive pixels,
#: landmarks float [M, 5, 2]).
Teacher = Callable[[Path], tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]


@dataclass
class FaceImage:
    """One image and its faces: ``boxes`` float64 [K, 4] inclusive pixels; ``landmarks``
    float64 [K, 5, 2] or None (faces with landmarks may get a synthetic mask);
    ``negatives_allowed``: every face of the image is annotated, so crops away from them are
    negatives."""

    path: Path
    boxes: npt.NDArray[np.float64]
    landmarks: npt.NDArray[np.float64] | None = None
    negatives_allowed: bool = True
    #: Class name of each face where the dataset has one (det/facemask: with_mask...).
    classes: list[str] | None = None
    #: Whether the landmarks give landmark samples (False for teacher landmarks, which only
    #: place synthetic masks).
    landmark_samples: bool = True
    #: Whether the image may be cut into its faces (zoom-in: :func:`_zoom_in`).
    zoomable: bool = False
    #: Regions [M, 4] that may hold a face no box labels (a teacher's doubtful detections): no
    #: negative overlaps them (IoU >= NEGATIVE_IOU); a zoomed image gives no negatives.
    ignored: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 4)))


@dataclass
class SampleSet:
    """Samples of one stage: images uint8 [N, S, S, 3] RGB, labels int8 [N], offsets float32
    [N, 4], landmarks float32 [N, 10] (zeros where ``has_landmarks`` is False)."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int8]
    offsets: npt.NDArray[np.float32]
    landmarks: npt.NDArray[np.float32]
    has_landmarks: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        return {
            "positive": int(((self.labels == LABEL_POSITIVE) & ~self.has_landmarks).sum()),
            "part": int((self.labels == LABEL_PART).sum()),
            "negative": int((self.labels == LABEL_NEGATIVE).sum()),
            "landmark": int(self.has_landmarks.sum()),
        }


@dataclass
class Quota:
    """How many samples of each kind to draw."""

    positive: int
    part: int
    negative: int
    landmark: int
    #: Negatives (and detector positives/parts) taken from an earlier stage's detections.
    mined: int = 0

    def scaled(self, factor: float) -> Quota:
        return Quota(*(int(round(v * factor)) for v in vars(self).values()))


# ---------------------------------------------------------------------------------------------
# Datasets


def is_validation_facemask(path: Path) -> bool:
    """det/facemask validation rule: the image number (``maksssksksssN``) ends in 1."""
    return path.stem.rstrip("0123456789") != path.stem and path.stem[-1] == "1"


def _text(element: ET.Element, path: str) -> str:
    """The text of ``element``'s required child ``path``."""
    text = element.findtext(path)
    if text is None:
        raise ValueError(f"annotation without <{path}>")
    return text


def read_facemask(data: Path, validation: bool) -> list[FaceImage]:
    folder = Path(data) / "det" / "facemask"
    images = []
    for xml_file in sorted((folder / "annotations").glob("*.xml")):
        root = ET.parse(xml_file).getroot()
        path = folder / "images" / _text(root, "filename")
        if is_validation_facemask(path) != validation:
            continue
        objects = list(root.iter("object"))
        boxes = [
            [float(_text(obj, f"bndbox/{key}")) for key in ("xmin", "ymin", "xmax", "ymax")]
            for obj in objects
        ]
        images.append(FaceImage(
            path, np.array(boxes, dtype=np.float64).reshape(-1, 4),
            classes=[obj.findtext("name", "") for obj in objects],
        ))
    return images


def read_ilc(data: Path, validation: bool, teacher: Teacher | None = None,
             doubtful: Teacher | None = None) -> list[FaceImage]:
    """det/ilc2021 images of a split (validation: names ending in 0 or 1). With ``teacher``,
    the faces it finds that overlap no annotated box (IoU < 0.3: the background faces the
    annotators left out) are added, so that no negative is cut from them. With ``doubtful``
    (the teacher at a lower score threshold), its other detections away from those faces
    become the image's ``ignored`` regions: faces too doubtful to train on, but too likely to
    cut negatives from."""
    folder = Path(data) / "det" / "ilc2021"
    images = []
    for xml_file in sorted((folder / "annotations").glob("*.xml")):
        path = folder / "images" / f"{xml_file.stem}.jpg"
        if is_ilc_validation(path) != validation:
            continue
        objects = read_voc(xml_file)
        boxes = np.array([box for box, _ in objects], dtype=np.float64).reshape(-1, 4)
        classes = [name for _, name in objects]
        if teacher is not None:
            extra = teacher(path)[0]
            if len(boxes) and len(extra):
                extra = extra[iou_inclusive(extra, boxes).max(axis=1) < NEGATIVE_IOU]
            boxes = np.concatenate([boxes, extra])
            classes += ["teacher"] * len(extra)
        ignored = np.zeros((0, 4))
        if doubtful is not None:
            ignored = doubtful(path)[0]
            if len(boxes) and len(ignored):
                ignored = ignored[iou_inclusive(ignored, boxes).max(axis=1) < NEGATIVE_IOU]
        images.append(FaceImage(path, boxes, classes=classes, ignored=ignored))
    return images


def read_teacher_labelled(
    data: Path, teacher: Teacher, folder: str, every: int = 1, skip_every: int = 0
) -> list[FaceImage]:
    """Images under ``data/folder`` (sorted; ``every``-th from index ``every - 1``; with
    ``skip_every`` = n the n-th from index n - 1 left out, as a held-out part) labelled by the
    teacher: its boxes, its landmarks for synthetic masks only. Images where it finds nothing
    are left out; negatives are cut only from images with more than one face found (a single
    face crop has little background)."""
    paths = image_files(Path(data) / folder)
    if skip_every:
        paths = [p for k, p in enumerate(paths) if k % skip_every != skip_every - 1]
    images = []
    for path in paths[every - 1 :: every]:
        boxes, points = teacher(path)
        if len(boxes):
            images.append(FaceImage(
                path, boxes, points, negatives_allowed=len(boxes) > 1, landmark_samples=False,
                zoomable=len(boxes) == 1,
            ))
    return images


def read_cuhk(data: Path, validation: bool) -> list[FaceImage]:
    folder = Path(data) / "det" / "cuhk5pt"
    images = []
    lines = (folder / "annotations.txt").read_text().split("\n")
    for index, line in enumerate(text for text in lines if text.strip()):
        if (index % 2 == 1) != validation:
            continue
        fields = line.split()
        left, right, top, bottom = (float(v) for v in fields[1:5])
        points = np.array(fields[5:15], dtype=np.float64).reshape(5, 2)
        images.append(FaceImage(
            folder / "images" / fields[0], np.array([[left, top, right, bottom]]), points[None],
            negatives_allowed=False, zoomable=True,
        ))
    return images


def read_mtfl(data: Path) -> list[FaceImage]:
    folder = Path(data) / "attr" / "mtfl_train"
    images = []
    for line in (folder / "annotations.txt").read_text().split("\n"):
        if not line.strip():
            continue
        fields = line.split()
        values = np.array(fields[1:11], dtype=np.float64)
        # MTFL's points are 1-based (pixel (0, 0) is at 1, 1); cuhk5pt's and the cascade's are
        # 0-based. Left as they were, they put every landmark of a net trained on both 1 px
        # below and right of cuhk5pt's (the standard MTCNN weights, 1-based too, show the same
        # offset on cuhk5pt and none on MTFL).
        points = np.stack([values[:5], values[5:]], axis=1) - 1.0
        box = estimate_face_box(points)
        images.append(FaceImage(
            folder / "images" / fields[0], box[None], points[None], negatives_allowed=False,
            zoomable=True,
        ))
    return images


#: Teacher-labelled training sets (issue 12): name -> (folder, every n-th image, held-out
#: every n-th).
TEACHER_SETS = {
    "rwmfd": ("masked_unlabeled/rwmfd", 1, 4),
    "ffhq_synthmask": ("seg/ffhq_synthmask/train/images", 1, 0),
    "utkface": ("attr/utkface", 4, 10),
}
#: What a teacher adds, by name: det/ilc2021 (its boxes plus the faces the teacher finds
#: beside them) and the :data:`TEACHER_SETS`.
TEACHER_SOURCES = ("ilc2021", *TEACHER_SETS)


def sources(
    data: Path, validation: bool, teacher: Teacher | None = None, common_boxes: bool = False,
    teacher_sources: Collection[str] = TEACHER_SOURCES, doubtful: Teacher | None = None,
) -> tuple[list[FaceImage], list[FaceImage]]:
    """(box images, landmark images) of a split; see the module docstring. With ``teacher``
    (sample format 4) the ``teacher_sources`` join the box images: det/ilc2021 with the
    teacher's extra faces (and ``doubtful``'s ignored regions, :func:`read_ilc`), and for
    training the :data:`TEACHER_SETS` labelled by it. With ``common_boxes`` (format 5) every
    source's boxes are redrawn in one convention (:mod:`.box_conventions`)."""
    landmark_images = _in_convention(read_cuhk(data, validation), "cuhk5pt", common_boxes)
    if not validation:
        landmark_images += _in_convention(read_mtfl(data), "mtfl", common_boxes)
    box_images = _in_convention(read_facemask(data, validation), "facemask", common_boxes)
    if teacher is None:
        return box_images, landmark_images
    if "ilc2021" in teacher_sources:
        box_images += _in_convention(read_ilc(data, validation, teacher, doubtful), "ilc2021",
                                     common_boxes)
    for name, (folder, every, skip_every) in TEACHER_SETS.items():
        if name in teacher_sources and not validation:
            box_images += _in_convention(
                read_teacher_labelled(data, teacher, folder, every, skip_every), "teacher",
                common_boxes)
    return box_images, landmark_images


def _in_convention(images: list[FaceImage], source: str, common: bool) -> list[FaceImage]:
    """``images`` with their boxes in the common convention when ``common`` (faces a teacher
    added, class ``"teacher"``, are converted from the teacher's convention)."""
    if not common:
        return images
    for image in images:
        from_teacher = np.array([name == "teacher" for name in image.classes or []]
                                or [False] * len(image.boxes), dtype=bool)
        image.boxes = np.where(
            from_teacher[:, None],
            box_conventions.convert(image.boxes, box_conventions.TEACHER),
            box_conventions.convert(image.boxes, box_conventions.CONVENTIONS[source]),
        )
        image.ignored = box_conventions.convert(image.ignored, box_conventions.TEACHER)
    return images


# ---------------------------------------------------------------------------------------------
# Geometry



def crop_square(image: np.ndarray, x: int, y: int, side: int, size: int) -> np.ndarray:
    """The ``side`` x ``side`` square at (x, y) (black outside the image), resized to ``size``."""
    height, width = image.shape[:2]
    patch = np.zeros((side, side, 3), dtype=np.uint8)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, width), min(y + side, height)
    if x1 > x0 and y1 > y0:
        patch[y0 - y : y1 - y, x0 - x : x1 - x] = image[y0:y1, x0:x1]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def crop_box(x: int, y: int, side: int) -> npt.NDArray[np.float64]:
    return np.array([x, y, x + side - 1, y + side - 1], dtype=np.float64)


def box_offsets(face: npt.NDArray[np.float64], crop: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    side = crop[2] - crop[0] + 1
    offsets: npt.NDArray[np.float64] = (face - crop) / side
    return offsets.astype(np.float32)


def landmark_fractions(
    points: npt.NDArray[np.float64], crop: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    side = crop[2] - crop[0] + 1
    fractions: npt.NDArray[np.float64] = (points - crop[:2]) / side
    return np.concatenate([fractions[:, 0], fractions[:, 1]]).astype(np.float32)


def label_for(overlap: float) -> int | None:
    """The kind of a crop whose best IoU with the faces is ``overlap`` (None: dropped)."""
    if overlap >= POSITIVE_IOU:
        return LABEL_POSITIVE
    if overlap >= PART_IOU:
        return LABEL_PART
    if overlap < NEGATIVE_IOU:
        return LABEL_NEGATIVE
    return None


# ---------------------------------------------------------------------------------------------
# Sampling


class _Collector:
    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.images: list[np.ndarray] = []
        self.labels: list[int] = []
        self.offsets: list[np.ndarray] = []
        self.landmarks: list[np.ndarray] = []
        self.has_landmarks: list[bool] = []

    def add(self, image: np.ndarray, x: int, y: int, side: int, label: int,
            face: npt.NDArray[np.float64] | None = None,
            points: npt.NDArray[np.float64] | None = None) -> None:
        """One crop, mirrored left-right with probability :data:`MIRRORED_FRACTION`."""
        crop = crop_box(x, y, side)
        patch = crop_square(image, x, y, side, self.size)
        if self.rng.random() < MIRRORED_FRACTION:
            # Crop pixel u goes to side - 1 - u: image column c goes to 2 x + side - 1 - c.
            patch = patch[:, ::-1]
            flip = 2 * x + side - 1
            if face is not None:
                face = np.array([flip - face[2], face[1], flip - face[0], face[3]])
            if points is not None:
                points = np.stack([flip - points[:, 0], points[:, 1]], axis=1)[MIRRORED_LANDMARKS]
        self.images.append(patch)
        self.labels.append(label)
        self.offsets.append(np.zeros(4, np.float32) if face is None else box_offsets(face, crop))
        self.has_landmarks.append(points is not None)
        self.landmarks.append(
            landmark_fractions(points, crop) if points is not None else np.zeros(10, np.float32)
        )

    def result(self) -> SampleSet:
        n = len(self.labels)
        return SampleSet(
            np.array(self.images, dtype=np.uint8).reshape(n, self.size, self.size, 3),
            np.array(self.labels, dtype=np.int8),
            np.array(self.offsets, dtype=np.float32).reshape(n, 4),
            np.array(self.landmarks, dtype=np.float32).reshape(n, 10),
            np.array(self.has_landmarks, dtype=bool),
        )


def _share(total: int, parts: int, rng: np.random.Generator) -> int:
    """``total / parts`` with stochastic rounding, so the shares add up to ``total`` on average."""
    if parts == 0:
        return 0
    mean = total / parts
    return int(mean) + int(rng.random() < mean - int(mean))


def _face_crops(face: npt.NDArray[np.float64], boxes: npt.NDArray[np.float64], want_label: int,
                count: int, rng: np.random.Generator, points: npt.NDArray[np.float64] | None = None,
                tries_per_crop: int = 15) -> list[tuple[int, int, int]]:
    """Up to ``count`` crops around ``face`` whose label is ``want_label``: (x, y, side)."""
    w, h = face[2] - face[0] + 1, face[3] - face[1] + 1
    found: list[tuple[int, int, int]] = []
    for _ in range(count * tries_per_crop):
        if len(found) == count:
            break
        side = int(rng.uniform(0.8 * min(w, h), 1.25 * max(w, h)))
        if side < MIN_CROP_SIDE:
            continue
        cx = face[0] + w / 2 + rng.uniform(-0.2, 0.2) * w
        cy = face[1] + h / 2 + rng.uniform(-0.2, 0.2) * h
        x, y = int(round(cx - side / 2)), int(round(cy - side / 2))
        crop = crop_box(x, y, side)
        if label_for(float(iou_inclusive(crop[None], boxes).max())) != want_label:
            continue
        # The target face must be the one it overlaps most (and, for landmarks, fully inside).
        if float(iou_inclusive(crop[None], face[None])[0, 0]) < float(iou_inclusive(crop[None], boxes).max()):
            continue
        if points is not None and not (
            (points >= crop[:2]).all() and (points <= crop[2:]).all()
        ):
            continue
        found.append((x, y, side))
    return found


#: One candidate crop (x, y, side) from an attempt number, or None where it is rejected.
_CropDraw = Callable[[int], tuple[int, int, int] | None]


def _crops_clear_of_faces(boxes: npt.NDArray[np.float64], count: int, draw: _CropDraw,
                          tries_per_crop: int = 20) -> list[tuple[int, int, int]]:
    """Up to ``count`` of ``draw``'s crops whose IoU with every face is below NEGATIVE_IOU."""
    found: list[tuple[int, int, int]] = []
    for attempt in range(count * tries_per_crop):
        if len(found) == count:
            break
        crop = draw(attempt)
        if crop is None:
            continue
        if len(boxes) and float(iou_inclusive(crop_box(*crop)[None], boxes).max()) >= NEGATIVE_IOU:
            continue
        found.append(crop)
    return found


def _negative_crops(image_shape: tuple[int, ...], boxes: npt.NDArray[np.float64], count: int,
                    rng: np.random.Generator) -> list[tuple[int, int, int]]:
    height, width = image_shape[:2]
    largest = max(MIN_CROP_SIDE, min(width, height) // 2)

    def draw(attempt: int) -> tuple[int, int, int]:
        side = int(rng.integers(MIN_CROP_SIDE, largest + 1))
        if attempt % 2 and len(boxes):  # near a face: shifted by up to one crop side
            face = boxes[rng.integers(len(boxes))]
            return (int(face[0] + rng.uniform(-1, 1) * side),
                    int(face[1] + rng.uniform(-1, 1) * side), side)
        return (int(rng.integers(0, max(1, width - side + 1))),
                int(rng.integers(0, max(1, height - side + 1))), side)

    return _crops_clear_of_faces(boxes, count, draw)


def _border_negative_crops(image_shape: tuple[int, ...], boxes: npt.NDArray[np.float64],
                           count: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Negative crops that reach past the image's edge, up to :data:`BORDER_NEGATIVE_LARGEST`
    times its shorter side. The cascade pads such crops with black, and zoom-in positives show
    black beyond their window: without these the O-net learns that black borders mean a face
    (it then accepts whole-image boxes around people)."""
    height, width = image_shape[:2]
    largest = max(MIN_CROP_SIDE + 1, int(min(width, height) * BORDER_NEGATIVE_LARGEST))

    def draw(_: int) -> tuple[int, int, int] | None:
        side = int(rng.integers(MIN_CROP_SIDE, largest + 1))
        x = int(rng.integers(-(side // 2), max(1, width - side // 2)))
        y = int(rng.integers(-(side // 2), max(1, height - side // 2)))
        inside = x >= 0 and y >= 0 and x + side <= width and y + side <= height
        return None if inside else (x, y, side)

    return _crops_clear_of_faces(boxes, count, draw)


def _frame_negative_crops(image_shape: tuple[int, ...], boxes: npt.NDArray[np.float64],
                          count: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Negative squares of one to :data:`FRAME_NEGATIVE_LARGEST` times the image's shorter side
    around its centre: the whole photo, small, in black. The close-up pass's nets see faces
    that overflow the photo this way and, without these, take any such square for a face."""
    height, width = image_shape[:2]
    shorter = min(width, height)

    def draw(_: int) -> tuple[int, int, int]:
        side = int(shorter * rng.uniform(1.0, FRAME_NEGATIVE_LARGEST))
        shift_x, shift_y = rng.uniform(-FRAME_NEGATIVE_SHIFT, FRAME_NEGATIVE_SHIFT, 2) * side
        return (int(width / 2 + shift_x - side / 2), int(height / 2 + shift_y - side / 2), side)

    return _crops_clear_of_faces(boxes, count, draw)


def _usable(box: npt.NDArray[np.float64]) -> bool:
    return bool(min(box[2] - box[0] + 1, box[3] - box[1] + 1) >= MIN_FACE_SIDE)


def _load_rgb(
    face_image: FaceImage, templates: Sequence[MaskTemplate], rng: np.random.Generator
) -> np.ndarray:
    bgr = read_image(face_image.path)
    if face_image.landmarks is not None and templates and rng.random() < MASKED_FRACTION:
        template = templates[int(rng.integers(len(templates)))]
        color: tuple[float, float, float] | None = None
        if rng.random() < 0.5:
            blue, green, red = rng.uniform(0, 255, 3)
            color = (blue, green, red)
        for points in face_image.landmarks:
            try:
                bgr, _ = apply_mask(bgr, points, template, color=color,
                                    coverage=float(rng.uniform(0.85, 1.0)), rng=rng)
            except ValueError:  # degenerate landmarks (eyes on one point, mouth above eyes)
                pass
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _zoom_in(
    image: np.ndarray, face_image: FaceImage, rng: np.random.Generator
) -> tuple[np.ndarray, npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """The image cut to a window around its one face that may cut into it (each side from
    :data:`ZOOM_IN_RANGE` of the face size inside the face's edge: a tight crop, chin or
    forehead cut off), the face box and landmarks in the window's pixels (the box may leave
    it)."""
    face = face_image.boxes[0]
    size = np.array([face[2] - face[0] + 1, face[3] - face[1] + 1] * 2)
    inward = rng.uniform(*ZOOM_IN_RANGE, 4) * size * np.array([1, 1, -1, -1])
    height, width = image.shape[:2]
    x0, y0 = (int(max(0, v)) for v in (face[:2] + inward[:2]))
    x1 = int(min(width, face[2] + 1 + inward[2]))
    y1 = int(min(height, face[3] + 1 + inward[3]))
    shift = np.array([x0, y0], np.float64)
    points = None if face_image.landmarks is None else face_image.landmarks - shift
    return image[y0:y1, x0:x1], face_image.boxes - np.tile(shift, 2), points


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, JPEG artefacts, light and colour changes, each with some probability."""
    if rng.random() < PHOTOMETRIC_PROBABILITY:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 2.0)))
    if rng.random() < PHOTOMETRIC_PROBABILITY:
        quality = int(rng.integers(15, 60))
        encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        image = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR))
    if rng.random() < PHOTOMETRIC_PROBABILITY:
        gain = rng.uniform(0.6, 1.4) * rng.uniform(0.85, 1.15, 3)
        lit: np.ndarray = np.clip(image * gain + rng.uniform(-30, 30), 0, 255)
        image = lit.astype(np.uint8)
    return image


def generate(
    box_images: list[FaceImage],
    landmark_images: list[FaceImage],
    size: int,
    quota: Quota,
    seed: int,
    templates: Iterable[MaskTemplate] = (),
    detector: Detector | None = None,
    augment: Collection[str] = (),
) -> SampleSet:
    """Draw ``quota`` samples of side ``size`` from the images; deterministic for ``seed``.

    ``augment`` (sample format 4), any of :data:`AUGMENTATIONS`: ``"zoom"``, zoom-in on
    single-face images (:func:`_zoom_in`, a share :data:`ZOOM_IN_FRACTION` of them);
    ``"photometric"``, photometric changes (:func:`_photometric`); ``"border"``, a share
    :data:`BORDER_NEGATIVE_FRACTION` of the negatives overhang the image's edge
    (:func:`_border_negative_crops`); ``"realzoom"``, zoom-in on the box images with one face
    and negatives (the real photos), which then give no negatives; ``"frame"``, a share
    :data:`FRAME_NEGATIVE_FRACTION` of the negatives are frame-filling squares
    (:func:`_frame_negative_crops`).

    ``detector`` (hard-negative mining): the earlier stages' cascade; each of its detections on
    the box images (up to ``quota.mined`` in all) becomes a negative, part or positive sample by
    its IoU with the faces (MTCNN trains R and O on the previous stage's output).
    """
    rng = np.random.default_rng(seed)
    templates = list(templates)
    collector = _Collector(size, rng)
    usable_box_faces = sum(sum(_usable(b) for b in im.boxes) for im in box_images)
    usable_landmark_faces = sum(
        sum(_usable(b) for b in im.boxes)
        for im in box_images + landmark_images if im.landmarks is not None and im.landmark_samples
    )
    all_faces = usable_box_faces + usable_landmark_faces
    negative_images = [im for im in box_images if im.negatives_allowed]
    for face_image in box_images + landmark_images:
        image = _load_rgb(face_image, templates, rng)
        boxes, all_points = face_image.boxes, face_image.landmarks
        ignored = face_image.ignored
        real_single = face_image.negatives_allowed and len(boxes) == 1
        zoomed = ((("zoom" in augment and face_image.zoomable)
                   or ("realzoom" in augment and real_single))
                  and rng.random() < ZOOM_IN_FRACTION)
        if zoomed:
            image, boxes, all_points = _zoom_in(image, face_image, rng)
        if "photometric" in augment:
            image = _photometric(image, rng)
        if not face_image.landmark_samples:
            all_points = None
        for index, face in enumerate(boxes):
            if not _usable(face):
                continue
            for label, total in ((LABEL_POSITIVE, quota.positive), (LABEL_PART, quota.part)):
                count = _share(total, all_faces, rng)
                for x, y, side in _face_crops(face, boxes, label, count, rng):
                    collector.add(image, x, y, side, label, face)
            if all_points is not None:
                points = all_points[index]
                count = _share(quota.landmark, usable_landmark_faces, rng)
                for x, y, side in _face_crops(face, boxes, LABEL_POSITIVE, count, rng, points):
                    collector.add(image, x, y, side, LABEL_POSITIVE, face, points)
        if face_image.negatives_allowed and not zoomed:  # a zoomed window is the face
            count = _share(quota.negative, len(negative_images), rng)
            overhanging = round(count * BORDER_NEGATIVE_FRACTION) if "border" in augment else 0
            framing = round(count * FRAME_NEGATIVE_FRACTION) if "frame" in augment else 0
            avoided = np.concatenate([boxes, ignored])
            crops = _negative_crops(image.shape, avoided, count - overhanging - framing, rng)
            crops += _border_negative_crops(image.shape, avoided, overhanging, rng)
            crops += _frame_negative_crops(image.shape, avoided, framing, rng)
            for x, y, side in crops:
                collector.add(image, x, y, side, LABEL_NEGATIVE)
            if detector is not None:
                _add_detections(collector, image, boxes, ignored, detector(image),
                                _share(quota.mined, len(negative_images), rng), rng)
    return collector.result()


def _add_detections(collector: _Collector, image: np.ndarray, faces: npt.NDArray[np.float64],
                    ignored: npt.NDArray[np.float64], detections: npt.NDArray[np.float64],
                    count: int, rng: np.random.Generator) -> None:
    """Up to ``count`` of the ``detections`` as samples labelled by their overlap with
    ``faces``; none becomes a negative where it overlaps an ``ignored`` region."""
    order = rng.permutation(len(detections))
    added = 0
    for box in detections[order]:
        if added == count:
            break
        side = int(round(max(box[2] - box[0], box[3] - box[1]) + 1))
        if side < MIN_CROP_SIDE:
            continue
        x = int(round((box[0] + box[2]) / 2 - side / 2))
        y = int(round((box[1] + box[3]) / 2 - side / 2))
        crop = crop_box(x, y, side)
        overlaps = iou_inclusive(crop[None], faces)[0]
        label = label_for(float(overlaps.max()) if len(faces) else 0.0)
        if label is None or (label == LABEL_NEGATIVE and len(ignored) and float(
                iou_inclusive(crop[None], ignored).max()) >= NEGATIVE_IOU):
            continue
        face = faces[int(overlaps.argmax())] if label != LABEL_NEGATIVE else None
        collector.add(image, x, y, side, label, face)
        added += 1


# ---------------------------------------------------------------------------------------------
# Cache


def save(samples: SampleSet, folder: Path, meta: Mapping[str, object]) -> None:
    """Write ``samples`` as ``part-NNN.npz`` shards of up to 20k samples plus ``meta.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("part-*.npz"):
        stale.unlink()
    for shard, start in enumerate(range(0, max(len(samples), 1), SHARD_SIZE)):
        np.savez(folder / f"part-{shard:03d}.npz", **{
            name: getattr(samples, name)[start : start + SHARD_SIZE] for name in vars(samples)
        })
    (folder / "meta.json").write_text(json.dumps({**meta, "counts": samples.counts()}, indent=1))


def load(folder: Path) -> SampleSet:
    shards = [np.load(path) for path in sorted(folder.glob("part-*.npz"))]
    return SampleSet(**{
        name: np.concatenate([shard[name] for shard in shards])
        for name in ("images", "labels", "offsets", "landmarks", "has_landmarks")
    })


def cached(folder: Path, meta: Mapping[str, object], make: Callable[[], SampleSet]) -> SampleSet:
    """Load the shards in ``folder`` when they were made with the same ``meta``, else make,
    save and return them. ``meta`` must describe everything that changes the samples."""
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
    meta_file = folder / "meta.json"
    if meta_file.is_file() and json.loads(meta_file.read_text()).get("key") == key:
        return load(folder)
    samples = make()
    save(samples, folder, {**meta, "key": key})
    return samples


def mask_templates(data: Path) -> list[MaskTemplate]:
    """The frontal MaskTheFace templates (side views are for turned heads, left out)."""
    return frontal(load_templates(Path(data) / "masktemplates"))
