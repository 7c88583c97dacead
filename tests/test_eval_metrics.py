import json

import cv2
import numpy as np
import pytest

from masksegx.eval.datasets import (
    DatasetError,
    evaluate_segmentation,
    pair_files,
    read_image,
    read_mask,
)
from masksegx.eval.metrics import SegmentationScores

SUMMARY_KEYS = {"miou", "mask_iou", "bg_iou", "pacc", "mean_image_iou", "n_images"}


def test_known_scores_for_one_image():
    truth = np.array([[1, 1, 0, 0], [1, 1, 0, 0]], bool)
    pred = np.array([[1, 0, 0, 0], [1, 1, 1, 0]], bool)
    scores = SegmentationScores()
    scores.add(pred, truth)
    assert (scores.tp, scores.fp, scores.fn, scores.tn) == (3, 1, 1, 3)
    summary = scores.summary()
    assert set(summary) == SUMMARY_KEYS
    assert summary["mask_iou"] == pytest.approx(3 / 5)
    assert summary["bg_iou"] == pytest.approx(3 / 5)
    assert summary["miou"] == pytest.approx(3 / 5)
    assert summary["pacc"] == pytest.approx(6 / 8)
    assert summary["mean_image_iou"] == pytest.approx(3 / 5)
    assert summary["n_images"] == 1
    assert isinstance(scores.tp, int)
    json.dumps(summary)  # plain Python numbers


def test_dataset_confusion_differs_from_mean_of_images():
    scores = SegmentationScores()
    big = np.zeros((10, 10), bool)
    big[:5] = True
    scores.add(big, big)  # perfect on 50 mask pixels
    small_truth = np.zeros((10, 10), bool)
    small_truth[0, :2] = True
    small_pred = np.zeros((10, 10), bool)
    small_pred[0, 1:3] = True  # IoU 1/3 on a 2-pixel mask
    scores.add(small_pred, small_truth)
    assert scores.mask_iou == pytest.approx(51 / 53)
    assert scores.bg_iou == pytest.approx(147 / 149)
    assert scores.miou == pytest.approx((51 / 53 + 147 / 149) / 2)
    assert scores.pacc == pytest.approx(198 / 200)
    assert scores.mean_image_iou == pytest.approx((1 + 1 / 3) / 2)
    assert scores.n_images == 2


def test_both_empty_counts_as_perfect():
    scores = SegmentationScores()
    empty = np.zeros((3, 4), bool)
    scores.add(empty, empty)
    assert scores.image_ious == [1.0]
    assert scores.mask_iou == 1.0 and scores.bg_iou == 1.0 and scores.pacc == 1.0


def test_prediction_on_empty_truth_scores_zero():
    scores = SegmentationScores()
    scores.add(np.ones((2, 2), bool), np.zeros((2, 2), bool))
    assert scores.mask_iou == 0.0 and scores.bg_iou == 0.0 and scores.mean_image_iou == 0.0


def test_integer_masks_are_accepted():
    scores = SegmentationScores()
    scores.add(np.array([[0, 1]], np.uint8), np.array([[0, 255]], np.uint8))
    assert scores.mask_iou == 1.0


@pytest.mark.parametrize(
    "pred, truth",
    [
        (np.zeros((3, 4), bool), np.zeros((4, 3), bool)),
        (np.zeros((3, 4, 1), bool), np.zeros((3, 4, 1), bool)),
        (np.zeros(4, bool), np.zeros(4, bool)),
        ([[True]], np.zeros((1, 1), bool)),
    ],
)
def test_bad_shapes_raise_value_error(pred, truth):
    with pytest.raises(ValueError):
        SegmentationScores().add(pred, truth)


def test_float_masks_raise_type_error():
    with pytest.raises(TypeError, match="truth"):
        SegmentationScores().add(np.zeros((2, 2), bool), np.zeros((2, 2), np.float32))


def test_scores_without_images_raise():
    with pytest.raises(ValueError, match="no images"):
        SegmentationScores().summary()


def test_read_mask_255_thresholds_at_127(tmp_path):
    values = np.array([[0, 5, 127, 128, 200, 255]], np.uint8)
    cv2.imwrite(str(tmp_path / "m.png"), values)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", 255), [[0, 0, 0, 1, 1, 1]])


def test_read_mask_255_accepts_colour_files(tmp_path):
    values = np.zeros((2, 2, 3), np.uint8)
    values[0, 0] = 255
    cv2.imwrite(str(tmp_path / "m.png"), values)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", 255), [[1, 0], [0, 0]])


def test_read_mask_2_keeps_only_label_2(tmp_path):
    labels = np.array([[0, 1, 2, 3], [2, 2, 1, 0]], np.uint8)
    cv2.imwrite(str(tmp_path / "m_gt.png"), labels)
    got = read_mask(tmp_path / "m_gt.png", 2)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, labels == 2)


def test_read_mask_2_rejects_colour_files(tmp_path):
    cv2.imwrite(str(tmp_path / "m.png"), np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(DatasetError, match="single-channel"):
        read_mask(tmp_path / "m.png", 2)


def test_read_mask_rejects_other_mask_values(tmp_path):
    cv2.imwrite(str(tmp_path / "m.png"), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="mask_value"):
        read_mask(tmp_path / "m.png", 1)


def test_read_image_handles_non_ascii_paths(tmp_path):
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    path = tmp_path / "visage_masqué_顔.png"
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    encoded.tofile(str(path))
    np.testing.assert_array_equal(read_image(path), image)


@pytest.mark.parametrize("content", [None, b"", b"not an image"])
def test_read_image_errors_name_the_path(tmp_path, content):
    path = tmp_path / "broken.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="broken.jpg"):
        read_image(path)


def _touch_images(folder, names):
    folder.mkdir()
    for name in names:
        cv2.imwrite(str(folder / name), np.zeros((2, 2), np.uint8))


def test_pair_files_matches_stems_and_gt_suffix(tmp_path):
    _touch_images(tmp_path / "img", ["b.png", "a.jpg", "c.JPEG", "d.bmp", "no_mask.jpg"])
    (tmp_path / "img" / "notes.txt").write_text("not an image")
    _touch_images(tmp_path / "gt", ["a_gt.png", "b.png", "c_gt.png", "d.png", "orphan.png"])
    pairs = pair_files(tmp_path / "img", tmp_path / "gt")
    assert [(i.name, m.name) for i, m in pairs] == [
        ("a.jpg", "a_gt.png"),
        ("b.png", "b.png"),
        ("c.JPEG", "c_gt.png"),
        ("d.bmp", "d.png"),
    ]


def test_pair_files_rejects_two_masks_for_one_image(tmp_path):
    _touch_images(tmp_path / "img", ["a.jpg"])
    _touch_images(tmp_path / "gt", ["a.png", "a_gt.png"])
    with pytest.raises(DatasetError, match="two masks"):
        pair_files(tmp_path / "img", tmp_path / "gt")


def test_pair_files_missing_directory(tmp_path):
    with pytest.raises(DatasetError, match="images directory not found"):
        pair_files(tmp_path / "nope", tmp_path)


def test_evaluate_segmentation_scores_and_times(tmp_path):
    _touch_images(tmp_path / "img", [])
    (tmp_path / "gt").mkdir()
    truths = {}
    for k in range(3):
        truth = np.zeros((6, 8), np.uint8)
        truth[k:, : 2 + k] = 2
        cv2.imwrite(str(tmp_path / "img" / f"{k}.png"), np.full((6, 8, 3), 40 * k, np.uint8))
        cv2.imwrite(str(tmp_path / "gt" / f"{k}_gt.png"), truth)
        truths[40 * k] = truth == 2
    pairs = pair_files(tmp_path / "img", tmp_path / "gt")
    perfect = evaluate_segmentation(pairs, lambda image: truths[int(image[0, 0, 0])], 2)
    assert perfect["miou"] == 1.0 and perfect["n_images"] == 3
    assert perfect["ms_per_image"] >= 0.0
    assert set(perfect) == SUMMARY_KEYS | {"ms_per_image"}
    inverted = evaluate_segmentation(pairs, lambda image: ~truths[int(image[0, 0, 0])], 2)
    assert inverted["miou"] == 0.0 and inverted["pacc"] == 0.0


def test_evaluate_segmentation_rejects_wrong_prediction_shape(tmp_path):
    _touch_images(tmp_path / "img", ["a.png"])
    _touch_images(tmp_path / "gt", ["a.png"])
    pairs = pair_files(tmp_path / "img", tmp_path / "gt")
    with pytest.raises(ValueError, match="shape"):
        evaluate_segmentation(pairs, lambda image: np.zeros((3, 3), bool), 255)
