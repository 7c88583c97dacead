"""Render a grid of synthetic masked faces to check the template placement by eye.

Faces and their 5 landmarks come from ``attr/mtfl_train``; templates and textures from
``masktemplates``. Each tile shows the composited face, the mask outline (green), the face box
from the landmarks (blue), the landmarks (red) and the coverage level::

    python -m tools.synth_preview --data ../shared/data --out /tmp/synth_grid.png
"""

from __future__ import annotations

import argparse
import os

import cv2
import numpy as np

from masksegx.eval.datasets import read_image
from masksegx.synthesis import (
    apply_mask,
    coverage_level,
    estimate_face_box,
    face_anchors,
    load_templates,
    load_textures,
)

from . import DATA

#: (template, recolour, texture, coverage) per tile, cycled; a mix of all the options.
RECIPES = [
    ("surgical", None, None, 1.0),
    ("N95", None, None, 1.0),
    ("KN95", None, None, 1.0),
    ("cloth", (40, 40, 160), None, 1.0),
    ("surgical_blue", None, None, 0.6),
    ("cloth", None, "check_1", 1.0),
    ("surgical_green", None, None, 0.8),
    ("gas", None, None, 1.0),
]


def read_mtfl(folder: str) -> list[tuple[str, np.ndarray]]:
    """(image path, landmarks [5, 2]) per line of MTFL's annotations.txt (x1..x5 then y1..y5)."""
    faces = []
    with open(os.path.join(folder, "annotations.txt"), encoding="utf-8") as lines:
        for line in lines:
            fields = line.split()
            coords = np.array(fields[1:11], dtype=np.float64)
            faces.append((os.path.join(folder, "images", fields[0]), coords.reshape(2, 5).T))
    return faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--out", default="/tmp/synth_grid.png")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile", type=int, default=250, help="tile side in pixels")
    args = parser.parse_args()

    root = os.path.join(args.data, "masktemplates")
    templates = {t.name: t for t in load_templates(root)}
    textures = load_textures(root)
    faces = read_mtfl(os.path.join(args.data, "attr", "mtfl_train"))
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(faces), size=args.count, replace=False)

    tiles = []
    for index, face_index in enumerate(picks):
        path, landmarks = faces[face_index]
        name, colour, texture, coverage = RECIPES[index % len(RECIPES)]
        image = read_image(path)
        masked, mask = apply_mask(
            image, landmarks, templates[name], color=colour,
            texture=None if texture is None else textures[texture],
            coverage=coverage, rng=rng,
        )
        box = estimate_face_box(landmarks)
        level = coverage_level(mask, landmarks, box)
        label = f"{name} c={coverage} L={level}"
        tiles.append(_annotate(masked, mask, landmarks, box, label, args.tile))
    columns = 4
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    cv2.imwrite(args.out, np.vstack(rows))
    print(f"wrote {args.out}")


def _annotate(image, mask, landmarks, box, label, tile_side):
    out = image.copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (0, 255, 0), 1)
    x1, y1, x2, y2 = np.rint(box).astype(int)
    cv2.rectangle(out, (x1, y1), (x2, y2), (255, 0, 0), 1)
    for x, y in np.rint(landmarks).astype(int):
        cv2.circle(out, (x, y), 2, (0, 0, 255), -1)
    for x, y in np.rint(face_anchors(landmarks)).astype(int):
        cv2.circle(out, (x, y), 2, (0, 255, 255), -1)
    scale = tile_side / max(out.shape[:2])
    out = cv2.resize(out, (round(out.shape[1] * scale), round(out.shape[0] * scale)))
    tile = np.zeros((tile_side, tile_side, 3), np.uint8)
    tile[: out.shape[0], : out.shape[1]] = out
    cv2.putText(tile, label, (4, tile_side - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    return tile


if __name__ == "__main__":
    main()
