"""The detector training's common box convention (masksegx.training.box_conventions)."""

import re
from pathlib import Path

import numpy as np
import pytest

from masksegx.training import samples
from masksegx.training.box_conventions import (
    COMMON,
    CONVENTIONS,
    TEACHER,
    BoxConvention,
    convention,
    convert,
    matched_geometry,
)

#: A teacher box 101 x 121 px (inclusive), centre (150, 160).
TEACHER_BOX = np.array([[100.0, 100.0, 200.0, 220.0]])


def _drawn_by(source: BoxConvention, teacher_box: np.ndarray) -> np.ndarray:
    """The box ``source`` draws for the face the teacher boxed as ``teacher_box``."""
    x1, y1, x2, y2 = teacher_box
    width, height = x2 - x1 + 1, y2 - y1 + 1
    centre_x = (x1 + x2) / 2 + source.shift_x * width
    centre_y = (y1 + y2) / 2 + source.shift_y * height
    w, h = source.width * width, source.height * height
    return np.array([centre_x - (w - 1) / 2, centre_y - (h - 1) / 2,
                     centre_x + (w - 1) / 2, centre_y + (h - 1) / 2])


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_each_source_maps_onto_the_common_box_of_the_same_face(name):
    source_box = _drawn_by(CONVENTIONS[name], TEACHER_BOX[0])
    np.testing.assert_allclose(convert(source_box[None], CONVENTIONS[name])[0],
                               _drawn_by(COMMON, TEACHER_BOX[0]), atol=1e-9)


def test_conversion_is_invertible_and_the_identity_within_a_convention():
    facemask = CONVENTIONS["facemask"]
    boxes = np.array([[10.0, 20.0, 59.0, 79.0], [0.0, 0.0, 11.0, 13.0]])
    np.testing.assert_allclose(convert(boxes, facemask, facemask), boxes)
    there = convert(boxes, facemask, CONVENTIONS["cuhk5pt"])
    np.testing.assert_allclose(convert(there, CONVENTIONS["cuhk5pt"], facemask), boxes, atol=1e-9)
    assert convert(np.zeros((0, 4)), TEACHER).shape == (0, 4)


def test_cuhk_boxes_grow_to_the_common_height():
    """cuhk5pt's boxes are about 0.7 of the teacher's height: redrawn, they are taller."""
    box = np.array([[0.0, 0.0, 99.0, 99.0]])
    converted = convert(box, CONVENTIONS["cuhk5pt"])[0]
    height = converted[3] - converted[1] + 1
    assert height == pytest.approx(100 * COMMON.height / CONVENTIONS["cuhk5pt"].height)


def test_measured_convention_recovers_the_drawn_one():
    """matched_geometry + convention give back the convention the boxes were drawn with; faces
    below the size limit or far from every teacher box are left out."""
    drawn = BoxConvention(0.05, 0.12, 1.1, 0.9)
    teacher_boxes = [np.array([[10.0 + k, 30.0, 109.0 + 2 * k, 149.0]]) for k in range(9)]
    images = [samples.FaceImage(Path(f"{k}.jpg"), _drawn_by(drawn, box[0])[None])
              for k, box in enumerate(teacher_boxes)]
    images.append(samples.FaceImage(Path("tiny.jpg"), np.array([[0.0, 0.0, 9.0, 9.0]])))
    images.append(samples.FaceImage(Path("far.jpg"), np.array([[500.0, 500.0, 599.0, 599.0]])))
    lookup = {f"{k}.jpg": box for k, box in enumerate(teacher_boxes)}
    lookup["tiny.jpg"] = np.array([[0.0, 0.0, 9.0, 9.0]])
    lookup["far.jpg"] = np.array([[0.0, 0.0, 99.0, 99.0]])

    def teacher(path):
        return lookup[str(path)], np.zeros((1, 5, 2))

    geometry = matched_geometry(images, teacher)
    assert len(geometry) == 9
    measured = convention(geometry)
    assert measured == BoxConvention(0.05, 0.12, 1.1, 0.9)
    with pytest.raises(ValueError, match="no face matched"):
        convention(np.zeros((0, 4)))


def test_sources_redraw_teacher_faces_from_the_teacher_convention(monkeypatch):
    """In a det/ilc2021 image, annotated faces convert from ilc2021's convention and the faces
    the teacher added from the teacher's."""
    annotated, added = TEACHER_BOX[0], TEACHER_BOX[0] + 300
    image = samples.FaceImage(Path("a.jpg"), np.stack([annotated, added]),
                              classes=["with_mask", "teacher"])
    (converted,) = samples._in_convention([image], "ilc2021", common=True)
    np.testing.assert_allclose(converted.boxes[0], convert(annotated[None], CONVENTIONS["ilc2021"])[0])
    np.testing.assert_allclose(converted.boxes[1], convert(added[None], TEACHER)[0])
    untouched = samples.FaceImage(Path("b.jpg"), TEACHER_BOX.copy())
    assert samples._in_convention([untouched], "cuhk5pt", common=False)[0].boxes is untouched.boxes


def _voc(folder: Path, stem: str, filename: str, boxes) -> None:
    objects = "".join(
        f"<object><name>with_mask</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for x0, y0, x1, y1 in boxes
    )
    (folder / f"{stem}.xml").write_text(
        f"<annotation><filename>{filename}</filename>{objects}</annotation>"
    )


def test_detector_mode_measures_the_annotations_against_the_cascades_boxes(tmp_path, capsys):
    """``--detector``: the training annotations of det/facemask and det/ilc2021 against
    masksegx's own uncalibrated boxes, pooled; here the bundled photo in both sets, its
    annotations drawn by a known convention around the cascade's boxes."""
    cv2 = pytest.importorskip("cv2")
    from masksegx import FaceDetector
    from masksegx.boxes import REFERENCE, redraw
    from masksegx.examples import MULTI_FACE_EXAMPLE
    from masksegx.training.box_conventions import main

    photo = cv2.imread(MULTI_FACE_EXAMPLE.path)
    own = FaceDetector(calibrated_boxes=False)(photo).boxes
    drawn = BoxConvention(0.02, -0.05, 0.9, 1.1)
    annotations = np.round(redraw(own, REFERENCE, drawn)).astype(int)
    for source, stem in (("facemask", "maksssksksss2"), ("ilc2021", "ilc_0002")):
        for part in ("images", "annotations"):
            (tmp_path / "det" / source / part).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "det" / source / "images" / f"{stem}.jpg"), photo)
        _voc(tmp_path / "det" / source / "annotations", stem, f"{stem}.jpg", annotations)
    assert main(["--data", str(tmp_path), "--detector"]) == 0
    printed = capsys.readouterr().out
    pooled = printed.split("OUTPUT_CONVENTION = ")[1]
    measured = BoxConvention(*(float(v) for v in re.findall(r"=(-?[0-9.]+)", pooled)))
    # Integer annotation corners move the medians by up to a pixel's share of a face.
    assert measured.shift_x == pytest.approx(0.02, abs=0.01)
    assert measured.shift_y == pytest.approx(-0.05, abs=0.01)
    assert measured.width == pytest.approx(0.9, abs=0.02)
    assert measured.height == pytest.approx(1.1, abs=0.02)
