import math
import sys
import types

import cv2
import numpy as np
import pytest

from masksegx.boxes import nms_exclusive
from masksegx.eval.datasets import DatasetError
from masksegx.eval.detection import (
    average_precision,
    box_iou,
    class_recall,
    evaluate_detector,
    evaluate_found,
    evaluate_landmarks,
    image_files,
    precision,
    read_cuhk,
    read_mtfl,
    read_voc,
    split_pairs,
    voc_pairs,
)
from masksegx.eval.reference_detectors import (
    DetectorUnavailable,
    decode_retinaface,
    make_detector,
    mtcnn_detector,
    retinaface_priors,
)

WIDE = [10.0, 10.0, 60.0, 60.0]  # 50 px wide
WIDE_2 = [100.0, 10.0, 150.0, 60.0]
NARROW = [200.0, 10.0, 210.0, 20.0]  # 10 px wide
FAR = [300.0, 300.0, 340.0, 340.0]  # overlaps nothing


def dets(*boxes_scores):
    """One image's detections from (box, score) pairs."""
    if not boxes_scores:
        return np.zeros((0, 4)), np.zeros(0)
    boxes, scores = zip(*boxes_scores)
    return np.array(boxes), np.array(scores)


def test_box_iou_known_values():
    others = [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]]
    iou = box_iou([[0, 0, 10, 10]], others)
    np.testing.assert_allclose(iou[0], [1.0, 50 / 150, 0.0, 0.0])


def test_perfect_detector_scores_one():
    truth = [np.array([WIDE, WIDE_2]), np.array([NARROW])]
    detections = [dets((WIDE, 0.9), (WIDE_2, 0.3)), dets((NARROW, 0.5))]
    assert average_precision(detections, truth) == pytest.approx(1.0)


def test_false_positive_above_the_only_true_positive_halves_ap():
    truth = [np.array([WIDE])]
    # Ranked FP then TP: precision 0 then 1/2 at recall 1 -> envelope area 0.5.
    assert average_precision([dets((FAR, 0.9), (WIDE, 0.8))], truth) == pytest.approx(0.5)
    # A FP ranked below every TP costs nothing.
    assert average_precision([dets((FAR, 0.1), (WIDE, 0.8))], truth) == pytest.approx(1.0)


def test_fp_between_true_positives_uses_the_envelope():
    truth = [np.array([WIDE]), np.array([WIDE_2])]
    detections = [dets((WIDE, 0.9), (FAR, 0.8)), dets((WIDE_2, 0.7))]
    # recall 0.5 at precision 1, then recall 1 at precision 2/3.
    assert average_precision(detections, truth) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_each_ground_truth_is_matched_once():
    truth = [np.array([WIDE, WIDE_2])]
    duplicate = [1.0, 1.0, 60.0, 60.0]  # IoU 0.68 with WIDE
    detections = [dets((WIDE, 0.9), (duplicate, 0.8), (WIDE_2, 0.7))]
    assert average_precision(detections, truth) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_iou_threshold_is_inclusive_and_applied():
    half = [35.0, 10.0, 60.0, 60.0]  # IoU with WIDE exactly 0.5
    truth = [np.array([WIDE])]
    assert average_precision([dets((half, 0.9))], truth, iou=0.5) == pytest.approx(1.0)
    assert average_precision([dets((half, 0.9))], truth, iou=0.51) == 0.0


def test_ignore_boxes_count_neither_way():
    truth = [np.array([WIDE, NARROW])]
    detections = [dets((NARROW, 0.9), (FAR, 0.85), (WIDE, 0.8))]
    # All boxes: TP, FP, TP -> 0.5 + 0.5 * 2/3.
    assert average_precision(detections, truth) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # NARROW ignored: its detection drops out, FP then TP over one positive -> 0.5.
    assert average_precision(detections, truth, ignore_smaller_than=20) == pytest.approx(0.5)


def test_missed_ignore_box_is_not_a_positive():
    truth = [np.array([WIDE, NARROW])]
    detections = [dets((WIDE, 0.8))]
    assert average_precision(detections, truth) == pytest.approx(0.5)
    assert average_precision(detections, truth, ignore_smaller_than=20) == pytest.approx(1.0)


def test_an_ignore_box_absorbs_several_detections():
    truth = [np.array([WIDE, NARROW])]
    detections = [dets((NARROW, 0.9), (NARROW, 0.85), (WIDE, 0.8))]
    assert average_precision(detections, truth, ignore_smaller_than=20) == pytest.approx(1.0)


def test_ap_edge_cases():
    truth = [np.array([WIDE])]
    assert average_precision([dets()], truth) == 0.0
    assert math.isnan(average_precision([dets((WIDE, 0.9))], [np.zeros((0, 4))]))
    assert math.isnan(average_precision([], []))
    with pytest.raises(ValueError, match="2 images, ground truth has 1"):
        average_precision([dets(), dets()], truth)
    with pytest.raises(ValueError, match="scores"):
        average_precision([(np.array([WIDE]), np.array([0.1, 0.2]))], truth)


def test_class_recall():
    labelled = [
        [(np.array(WIDE), "with_mask"), (np.array(WIDE_2), "with_mask")],
        [(np.array(NARROW), "without_mask")],
    ]
    detections = [dets((WIDE, 0.9)), dets((NARROW, 0.2))]
    recall = class_recall(detections, labelled)
    assert recall["with_mask"] == 0.5 and recall["without_mask"] == 1.0
    assert math.isnan(recall["mask_weared_incorrect"])


def voc_xml(objects, declaration=False):
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for b, name in objects
    )
    head = '<?xml version="1.0"?>\n' if declaration else ""
    return f"\n{head}<annotation><filename>x.jpg</filename>{body}</annotation>\n"


@pytest.mark.parametrize("declaration", [False, True])
def test_read_voc_with_leading_empty_line(tmp_path, declaration):
    path = tmp_path / "a.xml"
    objects = [((321, 34, 354, 69), "with_mask"), ((1, 2, 3, 4), "without_mask")]
    path.write_text(voc_xml(objects, declaration))
    objects = read_voc(path)
    assert [name for _, name in objects] == ["with_mask", "without_mask"]
    np.testing.assert_array_equal(objects[0][0], [321, 34, 354, 69])


def test_read_voc_errors(tmp_path):
    (tmp_path / "bad.xml").write_text("\n<annotation><object>")
    with pytest.raises(DatasetError, match="not valid XML"):
        read_voc(tmp_path / "bad.xml")
    (tmp_path / "nobox.xml").write_text("<annotation><object><name>a</name></object></annotation>")
    with pytest.raises(DatasetError, match="bndbox"):
        read_voc(tmp_path / "nobox.xml")
    with pytest.raises(DatasetError, match="cannot read"):
        read_voc(tmp_path / "missing.xml")


def make_voc_dataset(root, numbers, box=WIDE):
    images, annotations = root / "images", root / "annotations"
    images.mkdir(parents=True)
    annotations.mkdir()
    for n in numbers:
        cv2.imwrite(str(images / f"maksssksksss{n}.png"), np.zeros((80, 90, 3), np.uint8))
        (annotations / f"maksssksksss{n}.xml").write_text(voc_xml([(box, "with_mask")]))
    return images, annotations


def test_voc_pairs_and_split(tmp_path):
    images, annotations = make_voc_dataset(tmp_path, [1, 2, 11, 21, 30])
    (annotations / "maksssksksss30.xml").unlink()  # an image without annotation is left out
    pairs = voc_pairs(images, annotations)
    assert [p.stem for p, _ in pairs] == [f"maksssksksss{n}" for n in (1, 11, 2, 21)]
    assert [p.stem[-2:] for p, _ in split_pairs(pairs, "val")] == ["s1", "11", "21"]
    assert [p.stem for p, _ in split_pairs(pairs, "train")] == ["maksssksksss2"]
    assert split_pairs(pairs, "all") == pairs
    with pytest.raises(DatasetError, match="not found"):
        voc_pairs(tmp_path / "nowhere", annotations)


def test_ilc_split_takes_names_ending_in_0_or_1(tmp_path):
    stems = ["9e0", "ab1", "c2f", "0a", "11"]
    pairs = [(tmp_path / f"{stem}.jpg", tmp_path / f"{stem}.xml") for stem in stems]
    assert [p.stem for p, _ in split_pairs(pairs, "ilc-val")] == ["9e0", "ab1", "11"]
    assert [p.stem for p, _ in split_pairs(pairs, "ilc-train")] == ["c2f", "0a"]


def test_precision_counts_detections_on_a_face_and_can_skip_narrow_ones():
    truth = [np.array([WIDE, NARROW])]
    found = [dets((WIDE, 0.9), (NARROW, 0.8), (FAR, 0.7), (WIDE, 0.6))]
    assert precision(found, truth) == 0.75  # the duplicate on WIDE counts as a hit
    assert precision(found, truth, min_width=20) == 2 / 3  # NARROW left out
    assert math.isnan(precision([dets()], truth))
    assert precision(found, [np.zeros((0, 4))]) == 0.0


def test_found_rate_over_a_folder_tree(tmp_path):
    for name in ("a/1.jpg", "a/2.png", "b/3.jpg", "4.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / name), np.full((20, 30, 3), int(name[-5]) * 40, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    files = image_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["4.jpg", "a/1.jpg", "a/2.png", "b/3.jpg"]
    assert [p.name for p in image_files(tmp_path, every=2)] == ["1.jpg", "3.jpg"]
    # A face "found" in images brighter than the first: three of four.
    result = evaluate_found(files, lambda image: dets(*[(WIDE, 0.9)] * int(image.mean() > 50)))
    assert result["found_rate"] == 0.75 and result["n_found"] == 3 and result["n_images"] == 4
    with pytest.raises(DatasetError, match="no images"):
        evaluate_found([], lambda image: dets())
    with pytest.raises(DatasetError, match="not found"):
        image_files(tmp_path / "nowhere")


def test_split_needs_numbered_names(tmp_path):
    with pytest.raises(DatasetError, match="number"):
        split_pairs([(tmp_path / "photo.jpg", tmp_path / "photo.xml")], "val")


def test_evaluate_detector_keys_and_perfect_scores(tmp_path):
    images, annotations = make_voc_dataset(tmp_path, [1, 2])
    pairs = voc_pairs(images, annotations)
    result = evaluate_detector(pairs, lambda image: dets((WIDE, 0.9)))
    assert set(result) == {
        "ap50", "ap50_min20", "recall", "precision", "precision_min20", "n_images", "ms_per_image"
    }
    assert result["ap50"] == result["ap50_min20"] == 1.0
    assert result["recall"]["with_mask"] == 1.0 and result["n_images"] == 2
    assert result["ms_per_image"] >= 0.0
    with pytest.raises(DatasetError, match="no image"):
        evaluate_detector([], lambda image: dets())


CUHK_LINE = (
    "lfw_5590/A_0001.jpg 75 165 87 177 "
    "106.75 108.25 143.75 108.75 131.25 127.25 106.25 155.25 142.75 155.25"
)
MTFL_LINE = (
    "lfw_5590/B_0001.jpg 107.25 147.75 126.25 106.25 140.75 "
    "108.75 113.25 143.75 158.75 162.75 1 2 2 3"
)


def test_read_cuhk(tmp_path):
    path = tmp_path / "annotations.txt"
    path.write_text(CUHK_LINE + "\n\n")
    (item,) = read_cuhk(path)
    assert item.path == "lfw_5590/A_0001.jpg" and item.extra == {}
    np.testing.assert_array_equal(item.box, [75, 87, 165, 177])
    np.testing.assert_array_equal(item.landmarks[0], [106.75, 108.25])
    np.testing.assert_array_equal(item.landmarks[4], [142.75, 155.25])


def test_read_mtfl(tmp_path):
    path = tmp_path / "annotations.txt"
    path.write_text(MTFL_LINE + "\n")
    (item,) = read_mtfl(path)
    assert item.box is None
    assert item.extra == {"gender": 1, "smile": 2, "glasses": 2, "pose": 3}
    np.testing.assert_array_equal(item.landmarks[:, 0], [107.25, 147.75, 126.25, 106.25, 140.75])
    np.testing.assert_array_equal(item.landmarks[:, 1], [108.75, 113.25, 143.75, 158.75, 162.75])


def test_landmark_list_errors(tmp_path):
    path = tmp_path / "annotations.txt"
    path.write_text(CUHK_LINE + "\n" + CUHK_LINE.rsplit(" ", 1)[0] + "\n")
    with pytest.raises(DatasetError, match=":2: expected 15 fields"):
        read_cuhk(path)
    path.write_text(MTFL_LINE.replace("107.25", "abc"))
    with pytest.raises(DatasetError, match=":1:"):
        read_mtfl(path)
    with pytest.raises(DatasetError, match="cannot read"):
        read_cuhk(tmp_path / "missing.txt")


GT_POINTS = np.array([[30.0, 30.0], [50.0, 30.0], [40.0, 40.0], [32.0, 50.0], [48.0, 50.0]])
FACE_BOX = np.array([20.0, 15.0, 60.0, 60.0])


def write_images(root, names):
    root.mkdir(exist_ok=True)
    for name in names:
        cv2.imwrite(str(root / name), np.zeros((70, 70, 3), np.uint8))
    return root


def test_nme_on_a_synthetic_case(tmp_path):
    from masksegx.eval.detection import LandmarkItem

    images = write_images(tmp_path / "images", ["a.png", "b.png"])
    items = [
        LandmarkItem("a.png", FACE_BOX, GT_POINTS, {}),
        LandmarkItem("b.png", np.array([0.0, 0.0, 10.0, 10.0]), GT_POINTS, {}),  # IoU < 0.4
    ]
    shifted = GT_POINTS + [2.0, 0.0]  # 2 px error per point, inter-ocular 20 px
    decoy = np.array([[0.0, 0.0, 8.0, 60.0]])

    def detect(image):
        boxes = np.vstack([decoy, FACE_BOX[None]])
        return boxes, np.array([0.99, 0.9]), np.stack([GT_POINTS, shifted])

    result = evaluate_landmarks(items, images, detect)
    assert result == {"detected": 0.5, "nme": pytest.approx(0.1), "n_images": 2}


def test_landmark_images_can_be_prepared_per_face(tmp_path):
    from masksegx.eval.detection import LandmarkItem

    images = write_images(tmp_path / "images", ["a.png"])
    items = [LandmarkItem("a.png", FACE_BOX, GT_POINTS, {})]
    seen = []

    def cover_face(image, item):
        changed = image.copy()
        changed[:] = 7
        seen.append(item.path)
        return changed

    def detect(image):
        # Points exact only on the prepared image: prepare runs before detection.
        error = 0.0 if (image == 7).all() else 5.0
        return FACE_BOX[None], np.ones(1), (GT_POINTS + error)[None]

    assert evaluate_landmarks(items, images, detect, prepare=cover_face)["nme"] == 0.0
    assert seen == ["a.png"]
    assert evaluate_landmarks(items, images, detect)["nme"] > 0.0


def test_mtfl_match_needs_both_eyes_in_the_box_then_nearest_centroid(tmp_path):
    from masksegx.eval.detection import LandmarkItem

    images = write_images(tmp_path / "images", ["a.png"])
    items = [LandmarkItem("a.png", None, GT_POINTS, {})]
    boxes = np.array([
        [35.0, 20.0, 60.0, 60.0],  # misses the left eye: not a candidate despite exact points
        [20.0, 15.0, 60.0, 60.0],  # candidate, points off by 4 px
        [25.0, 20.0, 55.0, 55.0],  # candidate, points off by 1 px: the match
    ])
    points = np.stack([GT_POINTS, GT_POINTS + 4.0, GT_POINTS + [1.0, 0.0]])
    result = evaluate_landmarks(items, images, lambda image: (boxes, np.ones(3), points))
    assert result["detected"] == 1.0 and result["nme"] == pytest.approx(1.0 / 20.0)
    nothing = evaluate_landmarks(items, images, lambda image: (boxes[:1], np.ones(1), points[:1]))
    assert nothing["detected"] == 0.0 and math.isnan(nothing["nme"])


def test_landmarks_need_a_detector_with_landmarks(tmp_path):
    from masksegx.eval.detection import LandmarkItem

    images = write_images(tmp_path / "images", ["a.png"])
    items = [LandmarkItem("a.png", FACE_BOX, GT_POINTS, {})]
    with pytest.raises(DatasetError, match="no landmarks"):
        evaluate_landmarks(items, images, lambda image: (FACE_BOX[None], np.ones(1), None))
    with pytest.raises(DatasetError, match="not found"):
        evaluate_landmarks(items, tmp_path / "nowhere", lambda image: None)


def test_retinaface_priors_for_512():
    priors = retinaface_priors(512)
    assert priors.shape == (10752, 4)
    step = 8 / 512
    np.testing.assert_allclose(priors[0], [0.5 * step, 0.5 * step, 10 / 512, 10 / 512])
    np.testing.assert_allclose(priors[1], [0.5 * step, 0.5 * step, 20 / 512, 20 / 512])
    np.testing.assert_allclose(priors[2], [1.5 * step, 0.5 * step, 10 / 512, 10 / 512])
    np.testing.assert_allclose(priors[2 * 64], [0.5 * step, 1.5 * step, 10 / 512, 10 / 512])
    np.testing.assert_allclose(priors[2 * 64 * 64], [8 / 512, 8 / 512, 32 / 512, 32 / 512])
    np.testing.assert_allclose(priors[-1], [1 - 16 / 512, 1 - 16 / 512, 256 / 512, 256 / 512])


def test_decode_of_zero_offsets_returns_the_prior():
    priors = retinaface_priors(512)[[0, 5000, 10751]]
    boxes, points = decode_retinaface(np.zeros((3, 4)), np.zeros((3, 10)), priors)
    np.testing.assert_allclose(boxes[:, :2], priors[:, :2] - priors[:, 2:] / 2)
    np.testing.assert_allclose(boxes[:, 2:], priors[:, :2] + priors[:, 2:] / 2)
    np.testing.assert_allclose(points, np.repeat(priors[:, None, :2], 5, axis=1))


def test_decode_applies_the_variances():
    prior = np.array([[0.5, 0.5, 0.1, 0.2]])
    loc = np.array([[1.0, -1.0, np.log(2) / 0.2, 0.0]])
    landms = np.tile([1.0, 1.0], 5)[None]
    boxes, points = decode_retinaface(loc, landms, prior)
    np.testing.assert_allclose(boxes[0], [0.51 - 0.1, 0.48 - 0.1, 0.51 + 0.1, 0.48 + 0.1])
    np.testing.assert_allclose(points[0, 0], [0.51, 0.52])


def test_nms_exclusive_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([WIDE, [12.0, 10.0, 62.0, 60.0], WIDE_2, [10.0, 10.0, 60.0, 40.0]])
    scores = np.array([0.5, 0.9, 0.7, 0.6])
    # Box 1 suppresses box 0 (IoU 0.92); box 3 overlaps box 1 at IoU 0.54 -> dropped at 0.3.
    np.testing.assert_array_equal(nms_exclusive(boxes, scores, 0.3), [1, 2])
    np.testing.assert_array_equal(nms_exclusive(boxes, scores, 0.95), [1, 2, 3, 0])
    assert nms_exclusive(np.zeros((0, 4)), np.zeros(0), 0.5).size == 0


def test_mtcnn_detector_wraps_one_face_detector(tmp_path, monkeypatch):
    built, calls = [], []

    class FaceDetector:
        def __init__(self, models=None, *, backend="native", onnxruntime_threads=0,
                     close_up_models=None):
            built.append((backend, models, onnxruntime_threads, close_up_models))

        def __call__(self, image):
            calls.append(image.shape)
            return types.SimpleNamespace(
                boxes=np.array([WIDE]), scores=np.array([0.9]), landmarks=np.zeros((1, 5, 2))
            )

    fake = types.SimpleNamespace(FaceDetector=FaceDetector)
    monkeypatch.setitem(sys.modules, "masksegx.detect", fake)
    image = np.zeros((8, 8, 3), np.uint8)
    detect = mtcnn_detector("onnxruntime")
    boxes, scores, landmarks = detect(image)
    detect(image)
    assert boxes.shape == (1, 4) and landmarks.shape == (1, 5, 2) and len(calls) == 2
    paths = [tmp_path / name for name in ("p.onnx", "r.onnx", "o.onnx")]
    for path in paths:
        path.write_bytes(b"")
    mtcnn_detector("native", paths)(image)
    mtcnn_detector("native", close_up_models=paths)(image)
    given = tuple(str(p) for p in paths)
    assert built == [("onnxruntime", None, 1, None), ("native", given, 1, None),
                     ("native", None, 1, given)]
    with pytest.raises(DetectorUnavailable, match="not found"):
        mtcnn_detector("native", [tmp_path / "missing.onnx"])
    with pytest.raises(DetectorUnavailable, match="not found"):
        mtcnn_detector("native", close_up_models=[*paths[:2], tmp_path / "missing.onnx"])


def test_detectors_report_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "masksegx.detect", None)  # import fails
    with pytest.raises(DetectorUnavailable, match="masksegx.detect"):
        make_detector("mtcnn")
    with pytest.raises(DetectorUnavailable, match="models-dir"):
        make_detector("retinaface")
    with pytest.raises(DetectorUnavailable, match="version-RFB-320.onnx"):
        make_detector("ultralight", tmp_path)
    with pytest.raises(DetectorUnavailable, match="yunet_n_dynamic.onnx"):
        make_detector("yunet", tmp_path)
    with pytest.raises(ValueError, match="expected one of"):
        make_detector("yolo", tmp_path)
