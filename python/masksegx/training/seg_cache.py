"""Build the training cache of the learned segmentation path from the shared data folder.

    python -m masksegx.training.seg_cache --data /work/shared/data --out .data/seg

Everything :mod:`masksegx.training.train_segmentation` needs, packed into a few ``.npz`` files
(about 20 MiB) so that training runs on a machine without the shared data:

``real.npz``  labelled training images (JPEG bytes + mask PNG bytes + a face box each):

- ``seg/ffhq_synthmask/train`` minus its validation tenth (sorted pairs, indices 0, 10, 20...):
  405 portraits, downscaled 512 -> 256 (area), JPEG quality 90; target = label 2 (face mask),
  area-downscaled to a *soft* 8-bit mask (sub-pixel edges kept); face box = bounding box of the
  face labels 1 and 2.
- ``seg/real_dev`` minus ``real_dev_val`` (every 4th sorted pair, indices 0, 4, 8...; the
  splits of :mod:`masksegx.eval.splits`: never trained on): 69 photos, source bytes unchanged; face box
  estimated from the mask (its columns widened by 10 %, from 0.9 mask heights above the mask to
  its bottom).

``faces.npz``  unmasked faces for synthetic composites: every 4th line of ``attr/mtfl_train``
(1,250 faces), a square crop of side 2 x the larger side of
:func:`masksegx.synthesis.estimate_face_box` around its centre (border replicated), resized to
176 px, JPEG quality 90, with the 5 landmarks and the box in crop pixels.

``templates.npz``  the 21 MaskTheFace templates (BGRA, area-downscaled to at most 320 px wide,
anchors scaled alike) and the 27 textures (at most 128 px, BGR); the composites are made while
training (:func:`masksegx.synthesis.apply_mask`, random template, colour, texture, coverage).

``val.npz``  validation images for the training log: ``real_dev_val`` (23, source bytes) and
the ffhq validation tenth (45, at 256 px like the training portraits).

``manifest.json``  counts, sizes and the rules above.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..eval.datasets import pair_files, read_image, read_mask
from ..eval.detection import read_mtfl
from ..eval.splits import FFHQ_VAL, REAL_DEV_VAL
from ..synthesis import estimate_face_box, load_templates, load_textures

FFHQ_SIDE = 256
FACE_STEP = 4
FACE_SIDE = 176
FACE_CONTEXT = 2.0
TEMPLATE_MAX_WIDTH = 320
TEXTURE_MAX_SIDE = 128
FORMAT = 1

#: A stored labelled image: (image file bytes, mask PNG bytes, face box float32 [4]).
StoredPair = tuple[bytes, bytes, np.ndarray]


def _encode(image: np.ndarray, ext: str, quality: int = 92) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 9]
    ok, data = cv2.imencode(ext, image, params)
    if not ok:
        raise RuntimeError(f"cannot encode {ext}")
    return data.tobytes()


def _pack(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    return np.frombuffer(b"".join(blobs), np.uint8).copy(), offsets


def unpack(data: np.ndarray, offsets: np.ndarray, index: int) -> np.ndarray:
    """The ``index``-th blob of a packed array (see :func:`_pack`)."""
    return data[offsets[index] : offsets[index + 1]]


def mask_face_box(mask: np.ndarray) -> np.ndarray:
    """Face box estimated from a worn-mask mask (real_dev has no face boxes); see module doc."""
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    if rows.size == 0:
        h, w = mask.shape
        return np.array([0, 0, w, h], np.float32)
    x0, x1, y0, y1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
    pad = 0.05 * (x1 - x0)
    return np.array([x0 - pad, y0 - 0.9 * (y1 - y0), x1 + pad, y1], np.float32)


def _ffhq(data: Path) -> tuple[list[StoredPair], list[StoredPair]]:
    root = data / "seg/ffhq_synthmask/train"
    pairs = pair_files(root / "images", root / "masks")
    train: list[StoredPair] = []
    val: list[StoredPair] = []
    for index, (image_path, mask_path) in enumerate(pairs):
        image = read_image(image_path)
        labels = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise ValueError(f"cannot read {mask_path}")
        small = cv2.resize(image, (FFHQ_SIDE, FFHQ_SIDE), interpolation=cv2.INTER_AREA)
        soft = cv2.resize((labels == 2).astype(np.float32), (FFHQ_SIDE, FFHQ_SIDE),
                          interpolation=cv2.INTER_AREA)
        face = labels > 0
        rows, cols = np.flatnonzero(face.any(1)), np.flatnonzero(face.any(0))
        scale = FFHQ_SIDE / labels.shape[1]
        box = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32) * scale
        item = (_encode(small, ".jpg", 90), _encode(np.rint(soft * 255).astype(np.uint8), ".png"), box)
        (val if FFHQ_VAL.keeps(index) else train).append(item)
    return train, val


def _real_dev(data: Path) -> tuple[list[StoredPair], list[StoredPair]]:
    root = data / "seg/real_dev"
    pairs = pair_files(root / "images", root / "masks")
    train: list[StoredPair] = []
    val: list[StoredPair] = []
    for index, (image_path, mask_path) in enumerate(pairs):
        mask = read_mask(mask_path, 255)
        png = _encode(mask.astype(np.uint8) * 255, ".png")
        item = (Path(image_path).read_bytes(), png, mask_face_box(mask))
        (val if REAL_DEV_VAL.keeps(index) else train).append(item)
    return train, val


def _faces(data: Path) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    root = data / "attr/mtfl_train"
    items = read_mtfl(root / "annotations.txt")[::FACE_STEP]
    blobs: list[bytes] = []
    landmarks: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    for item in items:
        image = read_image(root / "images" / item.path)
        box = estimate_face_box(item.landmarks)
        centre = (box[:2] + box[2:]) / 2
        side = FACE_CONTEXT * float(np.max(box[2:] - box[:2]))
        scale = FACE_SIDE / side
        matrix = np.array([[scale, 0, FACE_SIDE / 2 - scale * centre[0]],
                           [0, scale, FACE_SIDE / 2 - scale * centre[1]]])
        crop = cv2.warpAffine(image, matrix, (FACE_SIDE, FACE_SIDE),
                              flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        points = item.landmarks @ matrix[:, :2].T + matrix[:, 2]
        corners = box.reshape(2, 2) @ matrix[:, :2].T + matrix[:, 2]
        blobs.append(_encode(crop, ".jpg", 90))
        landmarks.append(points)
        boxes.append(corners.reshape(4))
    return blobs, np.asarray(landmarks, np.float32), np.asarray(boxes, np.float32)


def _templates(data: Path) -> tuple[list[str], list[bytes], np.ndarray, list[bytes]]:
    root = data / "masktemplates"
    names: list[str] = []
    blobs: list[bytes] = []
    anchors: list[np.ndarray] = []
    for template in load_templates(root):
        bgra, points = template.bgra, template.anchors
        if bgra.shape[1] > TEMPLATE_MAX_WIDTH:
            factor = TEMPLATE_MAX_WIDTH / bgra.shape[1]
            size = (TEMPLATE_MAX_WIDTH, max(1, round(bgra.shape[0] * factor)))
            scale = np.array([size[0] / bgra.shape[1], size[1] / bgra.shape[0]])
            bgra = cv2.resize(bgra, size, interpolation=cv2.INTER_AREA)
            points = points * scale
        names.append(template.name)
        blobs.append(_encode(bgra, ".png"))
        anchors.append(points)
    textures: list[bytes] = []
    for texture in load_textures(root).values():
        factor = TEXTURE_MAX_SIDE / max(texture.shape[:2])
        if factor < 1:
            size = (max(1, round(texture.shape[1] * factor)), max(1, round(texture.shape[0] * factor)))
            texture = cv2.resize(texture, size, interpolation=cv2.INTER_AREA)
        textures.append(_encode(texture, ".png"))
    return names, blobs, np.asarray(anchors, np.float64), textures


def _save_pairs(path: Path, items: list[StoredPair], sources: list[int]) -> None:
    images, image_offsets = _pack([i[0] for i in items])
    masks, mask_offsets = _pack([i[1] for i in items])
    np.savez(path, images=images, image_offsets=image_offsets, masks=masks, mask_offsets=mask_offsets,
             boxes=np.asarray([i[2] for i in items], np.float32), sources=np.asarray(sources, np.int8))


def build(data: Path, out: Path) -> dict[str, object]:
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    ffhq_train, ffhq_val = _ffhq(data)
    real_train, real_val = _real_dev(data)
    # sources: 0 = ffhq (soft masks at 256 px), 1 = real_dev
    _save_pairs(out / "real.npz", ffhq_train + real_train, [0] * len(ffhq_train) + [1] * len(real_train))
    _save_pairs(out / "val.npz", real_val + ffhq_val, [1] * len(real_val) + [0] * len(ffhq_val))
    blobs, landmarks, boxes = _faces(data)
    faces, face_offsets = _pack(blobs)
    np.savez(out / "faces.npz", images=faces, image_offsets=face_offsets, landmarks=landmarks, boxes=boxes)
    names, template_blobs, anchors, textures = _templates(data)
    packed, offsets = _pack(template_blobs)
    tex, tex_offsets = _pack(textures)
    np.savez(out / "templates.npz", names=np.asarray(names), templates=packed, template_offsets=offsets,
             anchors=anchors, textures=tex, texture_offsets=tex_offsets)
    files = {p.name: p.stat().st_size for p in sorted(out.glob("*.npz"))}
    manifest = {
        "format": FORMAT,
        "counts": {"ffhq_train": len(ffhq_train), "real_dev_train": len(real_train), "faces": len(blobs),
                   "templates": len(names), "textures": len(textures), "real_dev_val": len(real_val),
                   "ffhq_val": len(ffhq_val)},
        "rules": {"ffhq_val": f"sorted ffhq_synthmask/train pairs, index % {FFHQ_VAL.step} == 0",
                  "real_dev_val": f"sorted real_dev pairs, index % {REAL_DEV_VAL.step} == 0",
                  "faces": f"attr/mtfl_train lines [::{FACE_STEP}]"},
        "bytes": files,
        "total_mib": round(sum(files.values()) / 2**20, 2),
        "seconds": round(time.time() - start, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path(".data/seg"))
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    manifest = build(args.data, args.out)
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
