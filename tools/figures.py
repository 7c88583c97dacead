"""The documentation's figures (matplotlib, the ``docs`` extra), written as small PNGs.

    python -m tools.figures all --data ../shared/data --out docs/img
    python -m tools.figures gallery failures pr       # only these (after retraining the detector)

Figures (each named next to its picture in ``docs/``):

- ``gallery``: the whole pipeline's overlays on the bundled photos and four CC0 Kaggle photos
  (the ``det/facemask`` validation images of 2-6 faces with the largest median face);
- ``failures``: the facemask validation images where our detector does worst, each with its F1
  at IoU 0.5 (annotated boxes green, detections red, masks overlaid);
- ``histograms``: the paper's Fig. 4-5 on our data: saturation and intensity (and NBRI, NMRI)
  of mask against skin pixels in the ``seg/ffhq_synthmask`` 3-class masks;
- ``training``: training curves of the shipped nets, from the logs the training commands
  write into ``python/masksegx/models`` (nets without a logged history are named in the figure);
- ``pr``: precision-recall curves on facemask validation, ours beside the reference detectors
  in ``<data>/models``;
- ``latency``: median latency bars of the side-by-side suite (the whole pipeline and our
  detector beside the reference detectors on the bundled 3-face photo) from its
  pytest-benchmark JSON (``--bench-json``; the command that writes it is printed when missing);
- ``spectral``: the spectral method's intermediate maps for one bundled photo.

Only CC0 photos are drawn (the bundled examples and ``det/facemask``); the other data sets
enter the figures as numbers only. Everything runs single-threaded in about a minute.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from masksegx import FaceMaskSegmenter, color, segment_spectral
from masksegx.eval.detection import match_detections, read_voc, split_pairs, voc_pairs
from masksegx.eval.reference_detectors import (
    STANDARD_MTCNN_MODELS,
    DetectorUnavailable,
    make_detector,
    mtcnn_detector,
)
from masksegx.examples import EXAMPLES
from masksegx.io import read_image, read_unchanged

from . import DATA, REPO

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402  (matplotlib's own dependency)

MODELS = REPO / "python" / "masksegx" / "models"
BENCH_JSON = REPO / "build" / "figures" / "side_by_side.json"
BENCH_COMMAND = (
    "python -m pytest benchmarks/test_bench_side_by_side.py --benchmark-only "
    f"--reference-models ../shared/data/models --benchmark-json={BENCH_JSON.relative_to(REPO)}"
)
#: Largest PNG written: photo figures are reduced to a 256-colour palette above it.
MAX_BYTES = 300_000
MASK_COLOUR = np.array([255, 0, 200], np.float32)  # BGR magenta: stands out on skin and masks


def save(fig: Figure, path: Path, photo: bool = False) -> None:
    """Write ``fig`` as PNG; photo figures become palette PNGs when they would exceed MAX_BYTES."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = buffer.getvalue()
    if photo and len(data) > MAX_BYTES:
        out = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").quantize(256).save(out, "PNG", optimize=True)
        data = out.getvalue()
    path.write_bytes(data)
    print(f"{path}: {len(data) / 1000:.0f} KB")


def overlay(image: np.ndarray, faces: Sequence[Any], labels: bool = True) -> np.ndarray:
    """RGB picture of the segmenter's output: masks tinted, boxes and attributes drawn."""
    picture = image.astype(np.float32)
    for face in faces:
        picture[face.mask] = 0.45 * picture[face.mask] + 0.55 * MASK_COLOUR
    picture_u8 = picture.astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 300))
    for face in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(picture_u8, (x0, y0), (x1, y1), (0, 220, 255), thickness)
        if labels:
            text = f"{face.wearing}, {face.gender}"
            cv2.putText(picture_u8, text, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.35 * thickness, (0, 220, 255), thickness, cv2.LINE_AA)
    return np.ascontiguousarray(picture_u8[:, :, ::-1])


def facemask_val(data: Path) -> list[tuple[Path, Path]]:
    root = data / "det" / "facemask"
    return split_pairs(voc_pairs(root / "images", root / "annotations"), "val")


def truth_boxes(annotation: Path) -> np.ndarray:
    return np.array([box for box, _ in read_voc(annotation)], np.float32).reshape(-1, 4)


def photo_grid(tiles: Sequence[tuple[np.ndarray, str]], columns: int, path: Path, width: float) -> None:
    rows = -(-len(tiles) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width, width / columns * rows * 0.85))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, (picture, title) in zip(np.atleast_1d(axes).ravel(), tiles):
        ax.imshow(picture)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    save(fig, path, photo=True)


def gallery(args: argparse.Namespace) -> None:
    segmenter = FaceMaskSegmenter(threads=1)
    chosen = [Path(example.path) for example in EXAMPLES]
    group_photos = []
    for image, annotation in facemask_val(args.data):
        widths = np.diff(truth_boxes(annotation)[:, ::2], axis=1).ravel()
        if 2 <= len(widths) <= 6:
            group_photos.append((-float(np.median(widths)), image))
    chosen += [image for _, image in sorted(group_photos)[:4]]
    tiles = []
    for path in chosen:
        image = read_image(path)
        faces = segmenter(image)
        tiles.append((overlay(image, faces), f"{path.name}: {len(faces)} face(s)"))
    photo_grid(tiles, 3, args.out / "gallery.png", 12)


def image_f1(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray) -> float:
    """F1 of one image's detections at IoU 0.5 (VOC matching); 1.0 when both are empty."""
    if len(truth) == 0 and len(boxes) == 0:
        return 1.0
    if len(boxes) == 0 or len(truth) == 0:
        return 0.0
    outcome, _ = match_detections([(boxes, scores)], [truth], [np.zeros(len(truth), bool)], 0.5)
    return 2.0 * int(np.sum(outcome == 1)) / (len(boxes) + len(truth))


def failures(args: argparse.Namespace) -> None:
    segmenter = FaceMaskSegmenter(threads=1)
    scored = []
    for image_path, annotation in facemask_val(args.data):
        image = read_image(image_path)
        faces = segmenter(image)
        boxes = np.array([face.box for face in faces], np.float32).reshape(-1, 4)
        scores = np.array([face.score for face in faces], np.float32)
        truth = truth_boxes(annotation)
        scored.append((image_f1(boxes, scores, truth), image_path, image, faces, truth))
    scored.sort(key=lambda item: item[0])
    tiles = []
    for f1, image_path, image, faces, truth in scored[: args.worst]:
        picture = overlay(image, faces, labels=False)
        for x0, y0, x1, y1 in truth.astype(int):
            cv2.rectangle(picture, (x0, y0), (x1, y1), (0, 200, 0), 2)
        for face in faces:
            x0, y0, x1, y1 = (int(round(v)) for v in face.box)
            cv2.rectangle(picture, (x0, y0), (x1, y1), (230, 0, 0), 2)
        tiles.append((picture, f"{image_path.stem}: F1 {f1:.2f} ({len(faces)} found, {len(truth)} true)"))
    photo_grid(tiles, 3, args.out / "failures.png", 12)
    mean = float(np.mean([item[0] for item in scored]))
    print(f"failures: mean per-image F1 {mean:.3f} over {len(scored)} validation images")


def pixel_histograms(data: Path, step: int) -> dict[str, dict[str, np.ndarray]]:
    """Saturation, intensity, NBRI and NMRI of skin (class 1) and mask (class 2) pixels."""
    folder = data / "seg" / "ffhq_synthmask" / "train"
    images = sorted((folder / "images").glob("*.jpg"))[::step]
    if not images:
        raise SystemExit(f"no images in {folder / 'images'}")
    values: dict[str, dict[str, list[np.ndarray]]] = {"skin": {}, "mask": {}}
    for path in images:
        image = read_image(path)
        classes = read_unchanged(folder / "masks" / f"{path.stem}_gt.png")  # 0 bg, 1 skin, 2 mask
        maps = color.spectral_maps(image)
        hsi = color.rgb_to_hsi(image)
        features = {"saturation": hsi[..., 1], "intensity": hsi[..., 2],
                    "NBRI": maps.nbri, "NMRI": maps.nmri}
        for label, where in (("mask", classes == 2), ("skin", classes == 1)):
            for name, feature in features.items():
                values[label].setdefault(name, []).append(feature[where])
    return {label: {name: np.concatenate(v) for name, v in named.items()} for label, named in values.items()}


def histograms(args: argparse.Namespace) -> None:
    values = pixel_histograms(args.data, args.step)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    ranges = {"saturation": (0, 1), "intensity": (0, 1), "NBRI": (-1, 1), "NMRI": (-1, 1)}
    for ax, (name, bounds) in zip(axes, ranges.items()):
        for label, colour in (("skin", "#d08050"), ("mask", "#3060c0")):
            ax.hist(values[label][name], bins=80, range=bounds, density=True, alpha=0.55,
                    color=colour, label=f"{label} ({values[label][name].size // 1000}k px)")
        ax.set_title(name)
        ax.set_yticks([])
    axes[0].legend(fontsize=8)
    fig.suptitle("Mask vs skin pixels, seg/ffhq_synthmask/train (paper Fig. 4-5 on our data)", fontsize=10)
    fig.tight_layout()
    save(fig, args.out / "histograms.png")


def training(args: argparse.Namespace) -> None:
    attributes = json.loads((MODELS / "attributes_metrics.json").read_text())
    landmarks = json.loads((MODELS / "ds_mtcnn_lnet.json").read_text())
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    history = attributes["history"]
    seconds = [entry["seconds"] for entry in history]
    for variant in history[0]["loss"]:
        axes[0].plot(seconds, [entry["loss"][variant] for entry in history], marker="o", label=variant)
    axes[0].set(title="attribute net: training loss (eq. 15)", xlabel="seconds")
    axes[0].legend(fontsize=8)
    accuracy_key = next(key for key in history[0] if key.startswith("val_clean_gender_acc"))
    axes[1].plot(seconds, [entry[accuracy_key] for entry in history], marker="o")
    axes[1].set(title=f"attribute net: {accuracy_key.replace('_', ' ')}", xlabel="seconds")
    epochs = [entry["epoch"] for entry in landmarks["history"]]
    axes[2].plot(epochs, [entry["train_l1"] for entry in landmarks["history"]], label="train")
    for split in ("clean", "masked"):
        axes[2].plot(epochs, [entry["val_l1"][split] for entry in landmarks["history"]], label=f"val {split}")
    axes[2].set(title="landmark net (ds_mtcnn_lnet): L1", xlabel="epoch")
    axes[2].legend(fontsize=8)
    fig.text(0.5, -0.04, "No logged history: masknet and the U-Net baseline (final loss only in "
             "*_train_metrics.json), the P-, R-, O-nets (per-epoch facts stay in the training cache).",
             ha="center", fontsize=8)
    fig.tight_layout()
    save(fig, args.out / "training.png")


def precision_recall(detections: list[tuple[np.ndarray, np.ndarray]], truths: list[np.ndarray]
                     ) -> tuple[np.ndarray, np.ndarray]:
    ignores = [np.zeros(len(t), bool) for t in truths]
    outcome, _ = match_detections(detections, truths, ignores, 0.5)
    tp = np.cumsum(outcome == 1)
    fp = np.cumsum(outcome == 0)
    return tp / sum(len(t) for t in truths), tp / np.maximum(tp + fp, 1)


def pr(args: argparse.Namespace) -> None:
    models = args.data / "models"
    detectors: dict[str, Callable[[np.ndarray], Any]] = {"ours (MTCNN, separable)": mtcnn_detector()}
    standard = [models / name for name in STANDARD_MTCNN_MODELS]
    if all(path.is_file() for path in standard):
        detectors["standard MTCNN"] = mtcnn_detector(models=standard)
    for label, name in (("YuNet-n", "yunet"), ("RetinaFace mnet0.25", "retinaface"),
                        ("Ultra-Light RFB-320", "ultralight")):
        try:
            detectors[label] = make_detector(name, models)
        except DetectorUnavailable as err:
            print(f"pr: {label} left out: {err}", file=sys.stderr)
    pairs = facemask_val(args.data)
    images = [read_image(image) for image, _ in pairs]
    truths = [truth_boxes(annotation) for _, annotation in pairs]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, detect in detectors.items():
        found = [detect(image)[:2] for image in images]
        recall, precision = precision_recall(found, truths)
        ax.plot(recall, precision, label=label)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"det/facemask validation ({len(images)} images), IoU 0.5")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, args.out / "pr.png")


def latency(args: argparse.Namespace) -> None:
    if not args.bench_json.is_file():
        raise SystemExit(f"latency: {args.bench_json} not found; write it first with\n    {BENCH_COMMAND}")
    report = json.loads(args.bench_json.read_text())
    rows = sorted(((1000 * bench["stats"]["median"], bench["param"]) for bench in report["benchmarks"]),
                  reverse=True)
    if not rows:
        raise SystemExit(f"latency: no benchmark in {args.bench_json}")
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    positions = np.arange(len(rows))
    ours = ["tab:purple" if name.startswith("masksegx") else "tab:gray" for _, name in rows]
    ax.barh(positions, [ms for ms, _ in rows], color=ours)
    ax.set_yticks(positions, [name for _, name in rows], fontsize=8)
    for y, (ms, _) in enumerate(rows):
        ax.text(ms, y, f" {ms:.1f}", va="center", fontsize=8)
    cpu = report.get("machine_info", {}).get("cpu", {}).get("brand_raw", "unknown CPU")
    ax.set(xlabel="median ms (one thread unless the name says otherwise)",
           title=f"{report['benchmarks'][0]['group']}, {cpu}")
    fig.tight_layout()
    save(fig, args.out / "latency.png")


def spectral(args: argparse.Namespace) -> None:
    example = EXAMPLES[0]
    image = read_image(example.path)
    result = segment_spectral(image, region=example.face_box)
    x0, y0, x1, y1 = result.box
    crop = np.ascontiguousarray(image[y0:y1, x0:x1, ::-1])
    components = np.zeros((*result.components.labels.shape, 3), np.uint8)
    for index, kept in enumerate(result.kept):
        components[result.components.labels == index + 1] = (40, 200, 40) if kept else (220, 40, 40)
    mask_crop = result.mask[y0:y1, x0:x1]
    final = crop.copy()
    final[mask_crop] = (0.45 * final[mask_crop] + 0.55 * MASK_COLOUR[::-1]).astype(np.uint8)
    panels: list[tuple[np.ndarray, str, str | None]] = [
        (crop, "face crop", None),
        (result.nbri, "NBRI (B-R)/(B+R), eq. 16", "coolwarm"),
        (result.nmri, "NMRI (S-I)/(S+I), eq. 17", "coolwarm"),
        (result.membership, "mask membership (FCM)", "viridis"),
        (components, f"components: {int(result.kept.sum())} kept (green), "
                     f"{int((~result.kept).sum())} dropped (red)", None),
        (final, "result", None),
    ]
    fig, axes = plt.subplots(1, 6, figsize=(15, 3))
    for ax, (picture, title, cmap) in zip(axes, panels):
        ax.imshow(picture, cmap=cmap)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    save(fig, args.out / "spectral.png", photo=True)


FIGURES: dict[str, Callable[[argparse.Namespace], None]] = {
    "gallery": gallery,
    "failures": failures,
    "histograms": histograms,
    "training": training,
    "pr": pr,
    "latency": latency,
    "spectral": spectral,
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("figures", nargs="+", choices=[*FIGURES, "all"])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--bench-json", type=Path, default=BENCH_JSON,
                        help="pytest-benchmark JSON for the latency chart")
    parser.add_argument("--worst", type=int, default=6, help="images in the failure gallery")
    parser.add_argument("--step", type=int, default=3, help="histograms: every STEP-th training image")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    names = list(FIGURES) if "all" in args.figures else list(dict.fromkeys(args.figures))
    for name in names:
        FIGURES[name](args)


if __name__ == "__main__":
    main()
