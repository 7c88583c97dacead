import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import masksegx
from masksegx.cli import main
from synthetic import masked_face

JSON_KEYS = {
    "method",
    "miou",
    "mask_iou",
    "bg_iou",
    "pacc",
    "mean_image_iou",
    "n_images",
    "ms_per_image",
}


def make_dataset(root, mask_value, count=3):
    """``count`` synthetic masked faces: images/*.jpg and masks/*(_gt).png in ``mask_value``."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for k in range(count):
        image, truth = masked_face(80, 64, seed=k)
        cv2.imwrite(str(images / f"face{k}.jpg"), image)
        suffix = "_gt" if mask_value == 2 else ""
        cv2.imwrite(str(masks / f"face{k}{suffix}.png"), truth.astype(np.uint8) * mask_value)
    return images, masks


def eval_args(images, masks, mask_value, *extra):
    return [
        "eval-seg",
        "--images",
        str(images),
        "--masks",
        str(masks),
        "--mask-value",
        str(mask_value),
        *extra,
    ]


@pytest.mark.parametrize("mask_value", [255, 2])
def test_eval_seg_writes_json(tmp_path, capsys, mask_value):
    images, masks = make_dataset(tmp_path / "data", mask_value)
    out = tmp_path / "scores.json"
    code = main(eval_args(images, masks, mask_value, "--method", "threshold", "--json", str(out)))
    assert code == 0
    record = json.loads(out.read_text())
    assert set(record) == JSON_KEYS
    assert record["method"] == "threshold" and record["n_images"] == 3
    assert record["miou"] > 0.8 and 0.0 <= record["pacc"] <= 1.0
    table = capsys.readouterr().out
    assert "mIoU" in table and "threshold" in table


def test_eval_seg_limit(tmp_path):
    images, masks = make_dataset(tmp_path / "data", 2)
    out = tmp_path / "scores.json"
    assert (
        main(
            eval_args(images, masks, 2, "--method", "graph_cut", "--limit", "2", "--json", str(out))
        )
        == 0
    )
    assert json.loads(out.read_text())["n_images"] == 2


def test_eval_seg_with_compensation(tmp_path):
    images, masks = make_dataset(tmp_path / "data", 255)
    out = tmp_path / "scores.json"
    args = eval_args(
        images, masks, 255, "--method", "spectral", "--compensation", "retinex", "--json", str(out)
    )
    assert main(args) == 0
    record = json.loads(out.read_text())
    assert record["method"] == "spectral" and record["compensation"] == "retinex"


@pytest.mark.parametrize("missing", ["images", "masks"])
def test_missing_directory_exits_2(tmp_path, capsys, missing):
    images, masks = make_dataset(tmp_path / "data", 255, count=1)
    paths = {"images": images, "masks": masks, missing: tmp_path / "nowhere"}
    assert main(eval_args(paths["images"], paths["masks"], 255, "--method", "threshold")) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "nowhere" in err and "Traceback" not in err


def test_no_pairs_exits_2(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(eval_args(tmp_path / "a", tmp_path / "b", 2, "--method", "edge")) == 2
    assert "no image/mask pairs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--method", "nonsense"],
        ["--method", "threshold", "--compensation", "retinex"],
        ["--method", "threshold", "--limit", "0"],
    ],
)
def test_bad_options_exit_2(tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as exit_info:
        main(eval_args(tmp_path, tmp_path, 255, *extra))
    assert exit_info.value.code == 2


def test_python_dash_m_runs_the_cli(tmp_path):
    images, masks = make_dataset(tmp_path / "data", 255, count=1)
    env = dict(os.environ, PYTHONPATH=str(Path(masksegx.__file__).parent.parent))
    done = subprocess.run(
        [sys.executable, "-m", "masksegx", *eval_args(images, masks, 255, "--method", "level_set")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "level_set" in done.stdout


def test_demo_writes_masks_and_overlays(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path)]) == 0
    names = sorted(os.listdir(tmp_path))
    assert names == [
        f"example_{color}_mask{suffix}"
        for color in ("blue", "navy")
        for suffix in (".json", "_mask.png", "_overlay.jpg")
    ]
    mask = cv2.imread(str(tmp_path / "example_blue_mask_mask.png"), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(mask)) <= {0, 255} and (mask == 255).any()
    assert "wrote 2 result(s)" in capsys.readouterr().out


def test_spectral_goes_on_after_an_unreadable_file(tmp_path, capsys):
    image, truth = masked_face(160, 128, seed=2)
    good = tmp_path / "face.png"
    cv2.imwrite(str(good), image)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main(["spectral", str(broken), str(good), "-o", str(out)]) == 1
    assert "broken.jpg" in capsys.readouterr().err
    mask = cv2.imread(str(out / "face_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert (mask & truth).sum() / (mask | truth).sum() > 0.8


def test_spectral_box_limits_the_mask(tmp_path):
    image, _ = masked_face(160, 128, seed=2)
    canvas = np.zeros((240, 200, 3), np.uint8)
    canvas[40:200, 30:158] = image
    path = tmp_path / "canvas.png"
    cv2.imwrite(str(path), canvas)
    assert main(["spectral", str(path), "--box", "30,40,158,200", "-o", str(tmp_path)]) == 0
    mask = cv2.imread(str(tmp_path / "canvas_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert mask.any() and not mask[:40].any() and not mask[:, :30].any()

DET_KEYS = {"ap50", "ap50_min20", "recall", "precision", "precision_min20", "n_images", "ms_per_image"}
FACE = (10.0, 10.0, 60.0, 60.0)
FACE_POINTS = np.array([[25.0, 30.0], [45.0, 30.0], [35.0, 40.0], [27.0, 50.0], [43.0, 50.0]])


def make_voc_dataset(root, numbers=(1, 2, 11)):
    """VOC folders with one 50x50 ``with_mask`` face at FACE per image."""
    images, annotations = root / "images", root / "annotations"
    images.mkdir(parents=True)
    annotations.mkdir()
    for n in numbers:
        cv2.imwrite(str(images / f"maksssksksss{n}.png"), np.zeros((80, 90, 3), np.uint8))
        (annotations / f"maksssksksss{n}.xml").write_text(
            "\n<annotation><object><name>with_mask</name><bndbox><xmin>10</xmin><ymin>10</ymin>"
            "<xmax>60</xmax><ymax>60</ymax></bndbox></object></annotation>\n"
        )
    return images, annotations


def fake_make_detector(name, models_dir=None, **kwargs):
    """A detector that finds FACE with its landmarks in every image."""
    return lambda image: (np.array([FACE]), np.array([0.9]), FACE_POINTS[None])


def det_args(images, annotations, *extra):
    return ["eval-det", "--images", str(images), "--annotations", str(annotations), *extra]


def test_eval_det_writes_the_issue_keys(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("masksegx.cli.eval_det.make_detector", fake_make_detector)
    images, annotations = make_voc_dataset(tmp_path / "data")
    out = tmp_path / "det.json"
    assert main(det_args(images, annotations, "--split", "val", "--json", str(out))) == 0
    record = json.loads(out.read_text())
    assert DET_KEYS <= set(record) and record["detector"] == "mtcnn"
    assert record["n_images"] == 2 and record["ap50"] == 1.0
    assert record["recall"] == {
        "with_mask": 1.0,
        "without_mask": None,
        "mask_weared_incorrect": None,
    }
    assert "AP50" in capsys.readouterr().out


@pytest.mark.parametrize("missing", ["images", "annotations"])
def test_eval_det_missing_directory_exits_2(tmp_path, capsys, missing):
    images, annotations = make_voc_dataset(tmp_path / "data", numbers=(1,))
    paths = {"images": images, "annotations": annotations, missing: tmp_path / "nowhere"}
    assert main(det_args(paths["images"], paths["annotations"])) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "nowhere" in err and "Traceback" not in err


def test_eval_det_empty_split_exits_2(tmp_path, capsys):
    images, annotations = make_voc_dataset(tmp_path / "data", numbers=(2,))
    assert main(det_args(images, annotations, "--split", "val")) == 2
    assert "no image/annotation pairs" in capsys.readouterr().err


def test_eval_found_scores_a_folder_tree(tmp_path, capsys, monkeypatch):
    # A detector that finds a face only in bright images.
    monkeypatch.setattr(
        "masksegx.cli.eval_found.make_detector",
        lambda name, models_dir=None, **kwargs: lambda image: (
            np.array([FACE] * int(image.mean() > 50)), np.array([0.9] * int(image.mean() > 50))
        ),
    )
    for k, name in enumerate(("a/1.jpg", "a/2.jpg", "b/3.png", "4.jpg")):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / name), np.full((20, 30, 3), 255 * (k != 0), np.uint8))
    out = tmp_path / "found.json"
    assert main(["eval-found", "--images", str(tmp_path), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["found_rate"] == 0.75 and record["n_images"] == 4
    assert "found rate" in capsys.readouterr().out
    assert main(["eval-found", "--images", str(tmp_path), "--every", "2", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["n_images"] == 2


def test_eval_found_without_images_exits_2(tmp_path, capsys):
    assert main(["eval-found", "--images", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["eval-found", "--images", str(tmp_path)]) == 2
    assert "no images" in capsys.readouterr().err


@pytest.mark.parametrize("detector", ["ultralight", "ultralight-masked", "retinaface", "yunet"])
def test_eval_det_missing_model_exits_2(tmp_path, capsys, detector):
    images, annotations = make_voc_dataset(tmp_path / "data", numbers=(1,))
    assert main(det_args(images, annotations, "--detector", detector)) == 2
    assert "--models-dir" in capsys.readouterr().err
    args = det_args(images, annotations, "--detector", detector, "--models-dir", str(tmp_path))
    assert main(args) == 2
    assert "model file not found" in capsys.readouterr().err


def test_unavailable_mtcnn_exits_2(tmp_path, capsys, monkeypatch):
    from masksegx.eval.reference_detectors import DetectorUnavailable

    def unavailable(name, models_dir=None, **kwargs):
        raise DetectorUnavailable("the MTCNN cascade (masksegx.detect) is unavailable")

    monkeypatch.setattr("masksegx.cli.eval_det.make_detector", unavailable)
    images, annotations = make_voc_dataset(tmp_path / "data", numbers=(1,))
    assert main(det_args(images, annotations)) == 2
    assert "masksegx.detect" in capsys.readouterr().err


def make_landmark_list(root, fmt):
    images = root / "images"
    (images / "lfw").mkdir(parents=True)
    cv2.imwrite(str(images / "lfw" / "a.jpg"), np.zeros((70, 70, 3), np.uint8))
    points = FACE_POINTS + [1.0, 0.0]  # 1 px off, inter-ocular 20 px -> NME 0.05
    if fmt == "cuhk":
        fields = [10, 60, 10, 60, *points.reshape(-1)]
    else:
        fields = [*points[:, 0], *points[:, 1], 1, 2, 2, 3]
    annotations = root / "annotations.txt"
    annotations.write_text("lfw/a.jpg " + " ".join(str(v) for v in fields) + "\n")
    return annotations, images


@pytest.mark.parametrize("fmt", ["cuhk", "mtfl"])
def test_eval_landmarks_writes_the_issue_keys(tmp_path, capsys, monkeypatch, fmt):
    monkeypatch.setattr("masksegx.cli.eval_landmarks.make_detector", fake_make_detector)
    annotations, images = make_landmark_list(tmp_path, fmt)
    out = tmp_path / "lm.json"
    args = ["eval-landmarks", "--annotations", str(annotations), "--images", str(images),
            "--format", fmt, "--json", str(out)]
    assert main(args) == 0
    record = json.loads(out.read_text())
    assert {"detected", "nme", "n_images"} <= set(record)
    assert record["detected"] == 1.0 and record["nme"] == pytest.approx(0.05)
    assert "NME" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["annotations", "images"])
def test_eval_landmarks_bad_paths_exit_2(tmp_path, capsys, monkeypatch, bad):
    monkeypatch.setattr("masksegx.cli.eval_landmarks.make_detector", fake_make_detector)
    annotations, images = make_landmark_list(tmp_path, "cuhk")
    paths = {"annotations": annotations, "images": images, bad: tmp_path / "nowhere"}
    args = ["eval-landmarks", "--annotations", str(paths["annotations"]),
            "--images", str(paths["images"]), "--format", "cuhk"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err
