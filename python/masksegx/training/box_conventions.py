"""One face-box convention for every detector training source.

The sources draw a face's box differently: det/facemask's VOC boxes sit lower and are squarer
than YuNet-n's, det/cuhk5pt's are about 0.7 of its height, the boxes estimated from MTFL's
landmarks are wider. Trained on all of them at once, the R- and O-net learn the average of
conflicting regression targets for the same face (issue 12: a face the P-net found at IoU 0.76
moved to 0.50 by the R-net). Each source's convention is measured against one common ruler,
the teacher (YuNet-n) run on the same images: the median, over faces matched at IoU >= 0.4, of
the source box's centre shift (in teacher widths and heights) and its width and height ratios.
With those, a box of one source is mapped onto the teacher's frame and from there onto the
common convention, the pooled det/facemask + det/ilc2021 boxes that the evaluation scores.

    python -m masksegx.training.box_conventions --data ../shared/data --cache DIR

measures the conventions (the teacher's boxes cached in ``DIR/teacher_labels.json``, the file
``train_detector --teacher`` uses) and prints them in the form of :data:`CONVENTIONS`; with
``--detector`` it measures the evaluation's annotations (det/facemask and det/ilc2021 training
splits) against masksegx's own detector instead, which
:data:`masksegx.detect.OUTPUT_CONVENTION` redraws its boxes by.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..boxes import REFERENCE, BoxConvention, iou_inclusive, redraw

if TYPE_CHECKING:
    from .samples import FaceImage, Teacher

#: Faces narrower or shorter than this are left out of the measurement (their boxes are a few
#: pixels either way).
MIN_MEASURED_SIDE = 20
MATCH_IOU = 0.4


TEACHER = REFERENCE
#: Measured by this module's command on the training splits (medians; the model card gives the
#: command's output).
CONVENTIONS = {
    "teacher": TEACHER,
    "facemask": BoxConvention(shift_x=0.025, shift_y=0.146, width=1.079, height=0.93),
    "ilc2021": BoxConvention(shift_x=0.009, shift_y=0.068, width=1.0, height=0.949),
    "cuhk5pt": BoxConvention(shift_x=-0.004, shift_y=0.058, width=0.944, height=0.693),
    "mtfl": BoxConvention(shift_x=-0.001, shift_y=0.013, width=1.13, height=0.92),
}
#: det/facemask and det/ilc2021 pooled (medians over both sets' matched faces).
COMMON = BoxConvention(shift_x=0.018, shift_y=0.104, width=1.046, height=0.939)


def settings() -> dict[str, dict[str, float]]:
    """Every convention and the common one, for a sample cache's key: samples made with other
    measurements must not be reused."""
    return {name: vars(c) for name, c in [*CONVENTIONS.items(), ("common", COMMON)]}


def convert(boxes: npt.NDArray[np.float64], source: BoxConvention,
            target: BoxConvention = COMMON) -> npt.NDArray[np.float64]:
    """Inclusive pixel boxes [K, 4] drawn by ``source``'s convention, as ``target`` draws them
    (by default the common one)."""
    return redraw(boxes, source, target)


def matched_geometry(images: list[FaceImage], teacher: Teacher) -> npt.NDArray[np.float64]:
    """[N, 4] (shift_x, shift_y, width, height) of each annotated face against the teacher box
    that overlaps it most (IoU >= :data:`MATCH_IOU`, both sides >= :data:`MIN_MEASURED_SIDE`)."""
    rows = []
    for image in images:
        found = teacher(image.path)[0]
        if not len(found) or not len(image.boxes):
            continue
        overlaps = iou_inclusive(image.boxes, found)
        for box, row in zip(image.boxes, overlaps):
            best = int(row.argmax())
            if row[best] < MATCH_IOU:
                continue
            ref = found[best]
            ref_w, ref_h = ref[2] - ref[0] + 1, ref[3] - ref[1] + 1
            box_w, box_h = box[2] - box[0] + 1, box[3] - box[1] + 1
            if min(box_w, box_h) < MIN_MEASURED_SIDE:
                continue
            rows.append([((box[0] + box[2]) - (ref[0] + ref[2])) / 2 / ref_w,
                         ((box[1] + box[3]) - (ref[1] + ref[3])) / 2 / ref_h,
                         box_w / ref_w, box_h / ref_h])
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def convention(geometry: npt.NDArray[np.float64]) -> BoxConvention:
    """The median convention of :func:`matched_geometry` rows."""
    if not len(geometry):
        raise ValueError("no face matched the teacher's: cannot measure a convention")
    return BoxConvention(*(round(float(v), 3) for v in np.median(geometry, axis=0)))


def main(argv: list[str] | None = None) -> int:
    from . import samples

    parser = argparse.ArgumentParser(prog="python -m masksegx.training.box_conventions",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, default=Path("build/mtcnn_training"),
                        help="folder of the teacher's cached boxes (teacher_labels.json)")
    parser.add_argument("--detector", action="store_true",
                        help="measure the det/facemask and det/ilc2021 training annotations "
                             "against masksegx's own detector's boxes (uncalibrated) instead, "
                             "and print them pooled: masksegx.detect.OUTPUT_CONVENTION")
    args = parser.parse_args(argv)
    if args.detector:
        from ..detect import FaceDetector
        from ..io import read_image

        detector = FaceDetector(calibrated_boxes=False)

        def detected(path: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
            found = detector(read_image(path))
            return found.boxes.astype(np.float64), found.landmarks.astype(np.float64)

        measured = [matched_geometry(images, detected)
                    for images in (samples.read_facemask(args.data, False),
                                   samples.read_ilc(args.data, False))]
        print(f"facemask {convention(measured[0])} ({len(measured[0])} faces), "
              f"ilc2021 {convention(measured[1])} ({len(measured[1])} faces)")
        print(f"OUTPUT_CONVENTION = {convention(np.concatenate(measured))}")
        return 0
    from .train_detector import YuNetTeacher  # torch: the training extra

    args.cache.mkdir(parents=True, exist_ok=True)
    teacher = YuNetTeacher(args.data / "models", args.cache / "teacher_labels.json")
    sources = {
        "facemask": samples.read_facemask(args.data, False),
        "ilc2021": samples.read_ilc(args.data, False),
        "cuhk5pt": samples.read_cuhk(args.data, False),
        "mtfl": samples.read_mtfl(args.data),
    }
    geometry = {name: matched_geometry(images, teacher) for name, images in sources.items()}
    teacher.save()
    for name, rows in geometry.items():
        print(f'    "{name}": {convention(rows)},  # {len(rows)} faces')
    pooled = convention(np.concatenate([geometry["facemask"], geometry["ilc2021"]]))
    print(f"COMMON = {pooled}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
