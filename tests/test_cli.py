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
        "example_blue_mask_mask.png",
        "example_blue_mask_overlay.jpg",
        "example_navy_mask_mask.png",
        "example_navy_mask_overlay.jpg",
    ]
    mask = cv2.imread(str(tmp_path / "example_blue_mask_mask.png"), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(mask)) <= {0, 255} and (mask == 255).any()
    assert "mask covers" in capsys.readouterr().out


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
