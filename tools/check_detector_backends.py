"""Check that the native and onnxruntime backends give the same MTCNN detections, and time them.

    python -m tools.check_detector_backends [--count 20] [--repeat 3]

Runs the cascade with the reference MTCNN weights (``models/mtcnn_{pnet,rnet,onet}.onnx`` of
``--data``, default ``../shared/data``) on the first ``--count`` images (sorted by name) of
``det/facemask/images``, each at its own size and resized to 640x480, under both backends:
every image must give the same number of faces, with boxes (and landmarks) within 0.5 px after
matching each native box to its nearest onnxruntime box. Then prints single-thread milliseconds
per 640x480 image for each backend (best of ``--repeat`` passes over the images). Exit status 1
when the backends disagree.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from masksegx.detect import Detections, FaceDetector

from . import DATA

TOLERANCE_PX = 0.5


def max_difference(a: Detections, b: Detections) -> float:
    """Largest box or landmark difference after nearest-box matching (inf if counts differ)."""
    if len(a) != len(b):
        return float("inf")
    worst = 0.0
    for box, points in zip(a.boxes, a.landmarks):
        nearest = int(np.argmin(np.abs(b.boxes - box).max(axis=1)))
        worst = max(
            worst,
            float(np.abs(b.boxes[nearest] - box).max()),
            float(np.abs(b.landmarks[nearest] - points).max()),
        )
    return worst


def time_per_image(detector: FaceDetector, images: list, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for image in images:
            detector(image)
        best = min(best, (time.perf_counter() - start) / len(images))
    return best * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models = tuple(args.data / "models" / f"mtcnn_{net}.onnx" for net in ("pnet", "rnet", "onet"))
    detectors = {
        "native": FaceDetector(models, backend="native"),
        "onnxruntime": FaceDetector(models, backend="onnxruntime", onnxruntime_threads=1),
    }
    files = sorted((args.data / "det" / "facemask" / "images").glob("*.png"))
    files += sorted((args.data / "det" / "facemask" / "images").glob("*.jpg"))
    files = sorted(files)[: args.count]
    originals = [cv2.imread(str(path), cv2.IMREAD_COLOR) for path in files]
    resized = [cv2.resize(image, (640, 480), interpolation=cv2.INTER_LINEAR) for image in originals]

    worst, faces, disagreements = 0.0, 0, []
    for path, original, large in zip(files, originals, resized):
        for label, image in (("original", original), ("640x480", large)):
            native, reference = (detectors[name](image) for name in ("native", "onnxruntime"))
            difference = max_difference(native, reference)
            faces += len(native)
            worst = max(worst, difference)
            if difference >= TOLERANCE_PX:
                disagreements.append(
                    f"{path.name} ({label}): {len(native)} vs {len(reference)} faces, "
                    f"max difference {difference:.3g} px"
                )
    print(f"{len(files)} images x 2 sizes: {faces} faces (native), "
          f"max box/landmark difference native vs onnxruntime {worst:.3g} px")
    for line in disagreements:
        print("  DISAGREE", line)

    for name, detector in detectors.items():
        detector(resized[0])  # warm-up
        print(f"{name:12s} {time_per_image(detector, resized, args.repeat):7.2f} ms per 640x480 "
              "image (single thread, reference MTCNN weights)")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
