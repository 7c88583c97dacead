"""Build the attribute-network training cache from ``../shared/data`` (CPU, a few minutes).

    python -m masksegx.training.attr_cache --data ../shared/data --out .data/attr

Everything the GPU training needs, in one folder (about 30 MiB; the GPU machine cannot see the
shared data):

- ``crops_NNN.jpg``: mosaics of aligned face crops, ``CROP_SIZE`` x ``CROP_SIZE`` tiles (32 per
  row, 1024 per mosaic, JPEG quality 85). Each crop is :func:`masksegx.align.align_face` at
  ``CROP_SIZE`` with ``PADDING``, exactly what inference computes before resizing to the net input.
- ``meta.npz``: per crop ``source``, ``name``, ``split`` (0 train, 1 validation), ``gender``
  (-1 unknown, 0 female, 1 male), ``level`` (-1 unknown, else 0..10), ``wearing`` (-1 unknown,
  0 none, 1 incorrect, 2 correct), ``landmarks`` (the 5 points in crop pixels, float32 [5, 2]),
  ``synth`` (unmasked face that training may put a synthetic mask on).
- ``templates/``: the MaskTheFace templates and textures, downscaled (``masks/masks.cfg`` with
  scaled anchors), for on-the-fly synthetic masks.
- ``info.json``: settings, counts, landmark-labelling statistics.

Sources and splits (validation is never trained on):

=================  ==========================================================================
mtfl_train         gender (1 male, 2 female) + annotated landmarks; level 0 (no masks in the
                   set); validation = every 10th line (lines 10, 20, ... counting from 1)
utkface            gender from the file name (0 male, 1 female), ages < 10 skipped; landmarks
                   from masksegx's detector (the face nearest the centre, as eval-attr finds
                   them: RetinaFace misplaces faces that fill the 128 px chip); level 0;
                   validation = every 10th file in sorted order
ffhq_synthmask     level from the mask ground truth, wearing from the name (cwm_ correct,
                   iwm_ incorrect); landmarks from RetinaFace; validation = ``test/``
real_dev           level from the mask ground truth; landmarks from RetinaFace; validation =
                   every 10th file in sorted order
facemask           one crop per annotated face; wearing from the class; landmarks from RetinaFace
                   run on the face's neighbourhood (box grown by half its size per side);
                   validation = images whose number ends in 1
ilc                det/ilc2021, as facemask (same classes; no license stated, may train);
                   validation = names ending in 0 or 1 (:func:`~masksegx.eval.detection.
                   is_ilc_validation`)
cuhk               det/cuhk5pt faces, annotated landmarks, no gender (teachers label them, see
                   :mod:`.teachers`); unmasked: level 0, wearing none; validation = odd 0-based
                   lines (the landmark nets' held-out rule, :mod:`.samples`)
=================  ==========================================================================

Building the extra sources into a second folder (``--sources ilc,cuhk --out .data/attr_extra``)
and passing both folders to the training's ``--cache`` is the same as one cache of all.

Landmarks not in the annotations (except UTKFace's) come from the reference RetinaFace (MobileNet-0.25,
``models/retinaface_mnet025_512.onnx``): this is distillation of a reference detector, said in
the model card. Coverage levels use :func:`masksegx.synthesis.coverage_level` with the face box
:func:`masksegx.synthesis.estimate_face_box` of the landmarks (so labels do not depend on a
detector's box).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict, TypeVar

import cv2
import numpy as np

from ..align import align_face, transform_points
from ..detect import detect_faces
from ..eval.attributes import nearest_centre_landmarks, neighbourhood_landmarks
from ..eval.detection import box_iou, is_ilc_validation, read_cuhk, read_mtfl, read_voc
from ..eval.reference_detectors import RetinaFaceDetector
from ..io import DatasetError, read_image, read_mask
from ..synthesis import coverage_level, estimate_face_box, load_templates, load_textures

CROP_SIZE = 96
PADDING = 0.2
MOSAIC_COLUMNS = 32
MOSAIC_TILES = 1024
JPEG_QUALITY = 85
#: Templates are stored so that their anchor width is at most this (pixels).
TEMPLATE_WIDTH = 128
TEXTURE_SIDE = 128
VALIDATION_EVERY = 10
#: facemask classes -> wearing state (0 none, 1 incorrect, 2 correct).
FACEMASK_WEARING = {"without_mask": 0, "mask_weared_incorrect": 1, "with_mask": 2}
#: A RetinaFace detection labels an annotated face when their IoU reaches this.
MATCH_IOU = 0.3
SOURCES = ("mtfl", "utk", "ffhq", "real_dev", "facemask", "ilc", "cuhk")
RETINAFACE = "models/retinaface_mnet025_512.onnx"
#: Pascal VOC face sets (facemask classes), by source name.
VOC_FOLDERS = {"facemask": "det/facemask", "ilc": "det/ilc2021"}

_Item = TypeVar("_Item")


class CropRow(TypedDict):
    """The labels of one crop (a row of ``meta.npz``; see the module docstring)."""

    source: str
    name: str
    split: int
    gender: int
    level: int
    wearing: int
    synth: bool
    landmarks: np.ndarray


class CacheInfo(TypedDict):
    """``info.json``: settings, counts and per-source statistics of a cache."""

    crop_size: int
    padding: float
    tile: int
    mosaic_columns: int
    mosaic_tiles: int
    jpeg_quality: int
    count: int
    stats: dict[str, dict[str, int]]
    command: str


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Builder:
    def __init__(self, data: Path, limit: int | None, crop_size: int = CROP_SIZE,
                 quality: int = JPEG_QUALITY) -> None:
        self.data = data
        self.crop_size, self.quality = crop_size, quality
        self.limit = limit
        self.detector = RetinaFaceDetector(data / RETINAFACE, threads=1)
        self.rows: list[CropRow] = []
        self.crops: list[np.ndarray] = []
        self.stats: dict[str, dict[str, int]] = {}

    def add(self, image: np.ndarray, landmarks: np.ndarray, source: str, name: str, split: int,
            gender: int = -1, level: int = -1, wearing: int = -1, synth: bool = False) -> None:
        crop, matrix = align_face(image, landmarks, self.crop_size, PADDING)
        self.crops.append(crop)
        self.rows.append({
            "source": source, "name": name, "split": split, "gender": gender, "level": level,
            "wearing": wearing, "synth": synth,
            "landmarks": transform_points(np.asarray(landmarks, np.float64), matrix),
        })

    def best_face(
        self, image: np.ndarray, box: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(landmarks, box) of the RetinaFace detection: the best-scoring one, or the one
        overlapping ``box`` most (IoU >= MATCH_IOU); None if there is none."""
        boxes, scores, points = self.detector(image)
        if len(scores) == 0:
            return None
        assert points is not None  # RetinaFace always returns landmarks
        if box is None:
            i = int(np.argmax(scores))
        else:
            overlaps = box_iou(np.asarray(box, np.float64)[None], boxes.astype(np.float64))[0]
            i = int(np.argmax(overlaps))
            if overlaps[i] < MATCH_IOU:
                return None
        return points[i].astype(np.float64), boxes[i].astype(np.float64)

    def _take(self, items: list[_Item]) -> list[_Item]:
        return items if self.limit is None else items[: self.limit]

    def mtfl(self) -> None:
        root = self.data / "attr/mtfl_train"
        items = self._take(read_mtfl(root / "annotations.txt"))
        for index, item in enumerate(items):
            split = int(index % VALIDATION_EVERY == VALIDATION_EVERY - 1)
            gender = {1: 1, 2: 0}[item.extra["gender"]]
            image = read_image(root / "images" / item.path)
            self.add(image, item.landmarks, "mtfl", item.path, split, gender, 0, 0, synth=True)
        self.stats["mtfl"] = {"faces": len(items)}

    def utk(self) -> None:
        root = self.data / "attr/utkface"
        files = self._take(sorted(p.name for p in root.iterdir() if p.suffix == ".jpg"))
        kept = missed = young = 0
        for index, name in enumerate(files):
            split = int(index % VALIDATION_EVERY == VALIDATION_EVERY - 1)
            parsed = parse_utk_name(name)
            if parsed is None:
                continue
            age, gender = parsed
            if age < 10:
                young += 1
                continue
            image = read_image(root / name)
            faces = detect_faces(image, calibrated_boxes=False)  # the cache's pick, unchanged
            landmarks = nearest_centre_landmarks(
                (faces.boxes, faces.scores, faces.landmarks), image.shape)
            if landmarks is None:
                missed += 1
                continue
            self.add(image, landmarks, "utk", name, split, gender, 0, 0, synth=True)
            kept += 1
        self.stats["utk"] = {"faces": kept, "no_landmarks": missed, "under_10": young}

    def ffhq(self) -> None:
        root = self.data / "seg/ffhq_synthmask"
        kept = missed = 0
        for split_name, split in (("train", 0), ("test", 1)):
            images = self._take(sorted((root / split_name / "images").glob("*.jpg")))
            for path in images:
                image = read_image(path)
                found = self.best_face(image)
                if found is None:
                    missed += 1
                    continue
                mask = read_mask(root / split_name / "masks" / f"{path.stem}_gt.png", 2)
                level = coverage_level(mask, found[0], estimate_face_box(found[0]))
                wearing = 2 if path.name.startswith("cwm") else 1
                self.add(image, found[0], "ffhq", f"{split_name}/{path.name}", split,
                         level=level, wearing=wearing)
                kept += 1
        self.stats["ffhq"] = {"faces": kept, "no_landmarks": missed}

    def real_dev(self) -> None:
        root = self.data / "seg/real_dev"
        images = self._take(sorted((root / "images").glob("*.jpg")))
        kept = missed = 0
        for index, path in enumerate(images):
            split = int(index % VALIDATION_EVERY == VALIDATION_EVERY - 1)
            image = read_image(path)
            found = self.best_face(image)
            if found is None:
                missed += 1
                continue
            mask = read_mask(root / "masks" / f"{path.stem}.png", 255)
            level = coverage_level(mask, found[0], estimate_face_box(found[0]))
            self.add(image, found[0], "real_dev", path.name, split, level=level)
            kept += 1
        self.stats["real_dev"] = {"faces": kept, "no_landmarks": missed}

    def facemask(self) -> None:
        self._voc_faces("facemask", lambda path: path.stem.endswith("1"))

    def ilc(self) -> None:
        self._voc_faces("ilc", is_ilc_validation)

    def _voc_faces(self, source: str, is_validation: Callable[[Path], bool]) -> None:
        """One crop per annotated face of ``det/<folder>`` (facemask classes)."""
        root = self.data / VOC_FOLDERS[source]
        images = self._take(sorted((root / "images").glob("*.jpg")))
        counts = {"faces": 0, "no_landmarks": 0}
        for path in images:
            split = int(is_validation(path))
            image = read_image(path)
            objects = read_voc(root / "annotations" / f"{path.stem}.xml")
            for number, (box, cls) in enumerate(objects):
                found = facemask_landmarks(self, image, box)
                if found is None:
                    counts["no_landmarks"] += 1
                    continue
                wearing = FACEMASK_WEARING[cls]
                self.add(image, found, source, f"{path.name}#{number}", split,
                         wearing=wearing)
                counts["faces"] += 1
        self.stats[source] = counts

    def cuhk(self) -> None:
        root = self.data / "det/cuhk5pt"
        items = self._take(read_cuhk(root / "annotations.txt"))
        for index, item in enumerate(items):
            image = read_image(root / "images" / item.path)
            self.add(image, item.landmarks, "cuhk", item.path, index % 2, level=0, wearing=0,
                     synth=True)
        self.stats["cuhk"] = {"faces": len(items)}

    def write(self, out: Path, command: str) -> CacheInfo:
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("crops_*.jpg"):
            old.unlink()
        crops = np.stack(self.crops)
        tile = self.crop_size
        for start in range(0, len(crops), MOSAIC_TILES):
            part = crops[start : start + MOSAIC_TILES]
            rows = -(-len(part) // MOSAIC_COLUMNS)
            mosaic = np.zeros((rows * tile, MOSAIC_COLUMNS * tile, 3), np.uint8)
            for k, crop in enumerate(part):
                r, c = divmod(k, MOSAIC_COLUMNS)
                mosaic[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = crop
            ok, data = cv2.imencode(".jpg", mosaic, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            (out / f"crops_{start // MOSAIC_TILES:03d}.jpg").write_bytes(data.tobytes())
        np.savez_compressed(
            out / "meta.npz",
            source=np.array([row["source"] for row in self.rows]),
            name=np.array([row["name"] for row in self.rows]),
            split=np.array([row["split"] for row in self.rows], np.int8),
            gender=np.array([row["gender"] for row in self.rows], np.int8),
            level=np.array([row["level"] for row in self.rows], np.int8),
            wearing=np.array([row["wearing"] for row in self.rows], np.int8),
            synth=np.array([row["synth"] for row in self.rows], bool),
            landmarks=np.array([row["landmarks"] for row in self.rows], np.float32),
        )
        write_templates(self.data / "masktemplates", out / "templates")
        info: CacheInfo = {
            "crop_size": self.crop_size, "padding": PADDING, "tile": tile,
            "mosaic_columns": MOSAIC_COLUMNS, "mosaic_tiles": MOSAIC_TILES,
            "jpeg_quality": self.quality, "count": len(crops), "stats": self.stats,
            "command": command,
        }
        (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        return info


def parse_utk_name(name: str) -> tuple[int, int] | None:
    """(age, gender 0 female / 1 male) of a UTKFace file name, None without a gender field."""
    fields = name.split("_")
    if len(fields) < 4 or fields[1] not in ("0", "1"):
        return None
    return int(fields[0]), 1 - int(fields[1])  # UTK: 0 male, 1 female


def facemask_landmarks(builder: Builder, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """RetinaFace landmarks of the annotated face ``box``, see
    :func:`masksegx.eval.attributes.neighbourhood_landmarks` (IoU >= MATCH_IOU)."""
    return neighbourhood_landmarks(builder.detector, image, box, MATCH_IOU)


def write_templates(source: Path, target: Path) -> None:
    """Downscaled copy of the MaskTheFace folder: templates with anchor width <= TEMPLATE_WIDTH
    (anchors scaled to match), textures with sides <= TEXTURE_SIDE."""
    (target / "masks/templates").mkdir(parents=True, exist_ok=True)
    lines = []
    for template in load_templates(source):
        width = float(np.ptp(template.anchors[:, 0]))
        factor = min(1.0, TEMPLATE_WIDTH / max(width, 1.0))
        height, wide = template.bgra.shape[:2]
        size = (max(1, round(wide * factor)), max(1, round(height * factor)))
        small = cv2.resize(template.bgra, size, interpolation=cv2.INTER_AREA)
        scale = np.array([size[0] / wide, size[1] / height])
        anchors = template.anchors * scale
        relative = f"masks/templates/{template.name}.png"
        cv2.imwrite(str(target / relative), small)
        lines.append(f"[{template.name}]\ntemplate: {relative}")
        for key, (x, y) in zip("abcdef", anchors):
            lines.append(f"mask_{key}: {x:.2f}, {y:.2f}")
        lines.append("")
    (target / "masks/masks.cfg").write_text("\n".join(lines))
    for name, texture in load_textures(source).items():
        folder = target / "masks/textures/all"
        folder.mkdir(parents=True, exist_ok=True)
        factor = min(1.0, TEXTURE_SIDE / max(texture.shape[:2]))
        small = cv2.resize(texture, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{name}.jpg"), small, [cv2.IMWRITE_JPEG_QUALITY, 90])


def read_cache(folder: Path) -> tuple[np.ndarray, dict[str, np.ndarray], CacheInfo]:
    """(crops uint8 [N, S, S, 3] BGR, meta arrays, info) of a cache folder."""
    folder = Path(folder)
    info_file = folder / "info.json"
    if not info_file.is_file():
        raise DatasetError(f"no attribute cache in {str(folder)!r} (build it with attr_cache)")
    info: CacheInfo = json.loads(info_file.read_text())
    meta: dict[str, np.ndarray] = dict(np.load(folder / "meta.npz"))
    tile, columns, count = info["tile"], info["mosaic_columns"], info["count"]
    crops = np.empty((count, tile, tile, 3), np.uint8)
    for m, start in enumerate(range(0, count, info["mosaic_tiles"])):
        mosaic = read_image(folder / f"crops_{m:03d}.jpg")
        for k in range(min(info["mosaic_tiles"], count - start)):
            r, c = divmod(k, columns)
            crops[start + k] = mosaic[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
    return crops, meta, info


def read_caches(folders: Sequence[Path]) -> tuple[np.ndarray, dict[str, np.ndarray], CacheInfo]:
    """:func:`read_cache` of several folders built with the same crop settings, concatenated
    (info: the first folder's settings, counts and statistics summed/merged)."""
    if not folders:
        raise ValueError("folders: expected at least one cache folder")
    parts = [read_cache(folder) for folder in folders]
    info = parts[0][2]
    for folder, (_, _, other) in zip(folders[1:], parts[1:]):
        if (other["crop_size"], other["padding"]) != (info["crop_size"], info["padding"]):
            raise DatasetError(f"cache {str(folder)!r} has other crop settings than {str(folders[0])!r}")
    merged: CacheInfo = {
        **info, "count": sum(part[2]["count"] for part in parts),
        "stats": {k: v for part in parts for k, v in part[2]["stats"].items()},
        "command": " && ".join(part[2]["command"] for part in parts),
    }
    crops = np.concatenate([part[0] for part in parts])
    meta = {key: np.concatenate([part[1][key] for part in parts]) for key in parts[0][1]}
    return crops, meta, merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path(".data/attr"))
    parser.add_argument("--limit", type=int, help="at most N images per source (smoke runs)")
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--crop-size", type=int, default=CROP_SIZE)
    parser.add_argument("--quality", type=int, default=JPEG_QUALITY)
    args = parser.parse_args(argv)
    builder = Builder(args.data, args.limit, args.crop_size, args.quality)
    for source in args.sources.split(","):
        log(f"{source} ...")
        getattr(builder, source)()
        log(f"{source}: {builder.stats[source]}")
    command = "python -m masksegx.training.attr_cache " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    info = builder.write(args.out, command)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    log(f"wrote {info['count']} crops to {args.out} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
