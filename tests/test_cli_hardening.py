"""Issue 15: bad input and failures on the command line. Nothing lost (each failing input is
reported, the batch goes on), nothing overwritten (outputs are renamed into place, the JSON
last, existing files only replaced with --overwrite), no batch ended by one file.

The CLI cases run the real command in a subprocess, as a user would.
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import warnings

import cv2
import numpy as np
import pytest

import bad_inputs
import masksegx
from masksegx import io
from masksegx.batch import expand_inputs, run_batch, write_atomically
from masksegx.cli import main
from masksegx.eval.datasets import DatasetError, MaskValueWarning, match_files, read_mask
from synthetic import masked_face

PYTHON_DIR = os.path.dirname(os.path.dirname(masksegx.__file__))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([PYTHON_DIR, os.environ.get("PYTHONPATH", "")]),
           PYTHONDONTWRITEBYTECODE="1")


def masksegx_cli(*args, timeout=120, **kwargs):
    return subprocess.run([sys.executable, "-m", "masksegx", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=ENV, **kwargs)


def noise(seed, height=64, width=64):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_images(folder, count, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        cv2.imwrite(str(folder / f"img{k}{suffix}"), noise(k))
    return folder


def damaged_jpeg():
    """A JPEG whose entropy-coded data has 8 bytes zeroed: libjpeg decodes it with a warning."""
    data = bytearray(cv2.imencode(".jpg", bad_inputs._face_like(64))[1].tobytes())
    middle = (data.index(b"\xff\xda") + len(data)) // 2
    data[middle:middle + 8] = bytes(8)
    return bytes(data)


def listing(folder):
    return sorted(os.listdir(folder))


# ---- 1: image size limit from the header; any per-file failure reported ----------------------

@pytest.mark.parametrize("name, data, size", [
    ("a.png", bad_inputs.png_header_only(30_000, 20_000), (30_000, 20_000)),
    ("a.jpg", cv2.imencode(".jpg", noise(0, 30, 50))[1].tobytes(), (50, 30)),
    ("a.bmp", cv2.imencode(".bmp", noise(0, 30, 50))[1].tobytes(), (50, 30)),
    ("a.tif", cv2.imencode(".tiff", noise(0, 30, 50))[1].tobytes(), (50, 30)),
    ("a.webp", cv2.imencode(".webp", noise(0, 30, 50))[1].tobytes(), (50, 30)),
    ("lossless.webp", cv2.imencode(".webp", noise(0, 30, 50), [cv2.IMWRITE_WEBP_QUALITY, 101])[1]
     .tobytes(), (50, 30)),
    ("a.ppm", cv2.imencode(".ppm", noise(0, 30, 50))[1].tobytes(), (50, 30)),
    ("comment.pgm", b"P5\n# made by hand\n50 30\n255\n" + bytes(1500), (50, 30)),
    ("a.gif", b"GIF89a" + (50).to_bytes(2, "little") + (30).to_bytes(2, "little") + bytes(8), (50, 30)),
])
def test_header_sizes_are_read_without_decoding(name, data, size):
    assert io.image_header_size(data) == size


def test_jpeg_header_size_skips_exif_and_thumbnails():
    thumbnail = cv2.imencode(".jpg", noise(1, 8, 12))[1].tobytes()  # its SOF says 12x8
    app1 = b"Exif\0\0" + thumbnail
    jpeg = cv2.imencode(".jpg", noise(0, 30, 50))[1].tobytes()
    with_exif = jpeg[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + jpeg[2:]
    assert io.image_header_size(with_exif) == (50, 30)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0",
                                  b"RIFF\0\0\0\0WEBPVP8 ", b"II*\0\xff\xff\xff\x7f"])
def test_unknown_or_short_headers_give_none(data):
    assert io.image_header_size(data) is None


def test_read_image_max_pixels_is_checked(tmp_path):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), noise(0, 30, 50))
    assert io.read_image(path, max_pixels=1500).shape == (30, 50, 3)
    with pytest.raises(DatasetError, match=r"a.png' is 50x30 \(1500 pixels\), over the limit of 1499"):
        io.read_image(path, max_pixels=1499)
    with pytest.raises(TypeError, match="max_pixels"):
        io.read_mask(path, 255, max_pixels="1000")
    with pytest.raises(ValueError, match="max_pixels"):
        io.read_unchanged(path, max_pixels=0)


def test_cli_refuses_images_over_the_pixel_limit_and_goes_on(tmp_path):
    folder = write_images(tmp_path / "in", 2)
    # 30000 x 30000: an 875 KB PNG of this size took 24 GB (issue 15). Never decoded here: the
    # header alone is refused (the file holds one row of pixel data).
    (folder / "huge.png").write_bytes(bad_inputs.png_header_only(30_000, 30_000))
    done = masksegx_cli("segment", folder, "-o", tmp_path / "out", "--method", "spectral")
    assert done.returncode == 1, done.stderr
    assert "huge.png' is 30000x30000 (900000000 pixels), over the limit of 200000000" in done.stderr
    assert "Traceback" not in done.stderr and "wrote 2 result(s)" in done.stdout
    done = masksegx_cli("segment", folder / "img0.png", "-o", tmp_path / "small", "--max-pixels", 4000)
    assert done.returncode == 1 and "is 64x64 (4096 pixels), over the limit of 4000" in done.stderr


class FailsOnSeed1:
    """A segmenter that runs out of memory on one image (the image of noise(1))."""

    def __call__(self, image):
        if (image == noise(1)).all():
            raise MemoryError()
        return []


def test_any_per_file_failure_is_reported_and_the_batch_goes_on(tmp_path, monkeypatch):
    folder = write_images(tmp_path / "in", 4)
    real_read = io.read_image

    def read(path, **kwargs):
        if path.endswith("img3.png"):
            raise MemoryError("decoding")
        return real_read(path, **kwargs)

    monkeypatch.setattr("masksegx.batch.read_image", read)
    sources, _ = expand_inputs([str(folder)])
    report = run_batch(sources, FailsOnSeed1, str(tmp_path / "out"), threads=2)
    assert report.written == 2
    assert sorted((os.path.basename(label), message) for label, message in report.failures) == [
        ("img1.png", "out of memory"), ("img3.png", "out of memory (decoding)")]
    assert listing(tmp_path / "out") == [
        f"img{k}{suffix}" for k in (0, 2) for suffix in (".json", "_mask.png", "_overlay.jpg")]


# ---- 2: atomic outputs -----------------------------------------------------------------------

def _limit_file_size():
    # The mask PNG (about 100 bytes) fits, the overlay JPEG (several KB of noise) does not.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))


def test_a_write_failure_leaves_no_partial_outputs(tmp_path):
    write_images(tmp_path / "in", 1)
    out = tmp_path / "out"
    done = masksegx_cli("segment", tmp_path / "in", "-o", out, "--method", "spectral",
                        preexec_fn=_limit_file_size)
    assert done.returncode == 1, done.stderr
    assert "img0.png: [Errno 27] cannot write" in done.stderr and "img0_overlay.jpg" in done.stderr
    assert "Traceback" not in done.stderr
    assert listing(out) == []  # no JSON, no lone mask, no temporary file


def test_write_atomically_places_all_or_nothing(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "missing" / "b.json"
    with pytest.raises(OSError):
        write_atomically([(str(first), b"a"), (str(second), b"b")])
    assert listing(tmp_path) == []
    write_atomically([(str(first), b"a"), (str(tmp_path / "b.json"), b"b")])
    assert first.read_bytes() == b"a" and listing(tmp_path) == ["a.png", "b.json"]


# ---- 3: never overwrite, never read our own outputs -------------------------------------------

def test_user_files_are_not_overwritten_and_outputs_not_read_back(tmp_path):
    folder = write_images(tmp_path / "s", 2)
    user_mask = folder / "img0_mask.png"  # the user's own file, named like our output of img0
    cv2.imwrite(str(user_mask), noise(9))
    before = user_mask.read_bytes()
    done = masksegx_cli("segment", folder, "-o", folder, "--method", "spectral")
    assert done.returncode == 1, done.stderr
    assert f"{user_mask}' exists and was not written by this run (--overwrite" in done.stderr
    assert user_mask.read_bytes() == before
    assert not (folder / "img0.json").exists()
    # img0_mask.png has no img0.json beside it: it is an input like any other.
    assert "wrote 2 result(s)" in done.stdout and (folder / "img0_mask.json").exists()
    # The second run does not read img1_mask.png, img1_overlay.jpg... back as inputs.
    sources, _ = expand_inputs([str(folder), str(folder / "*.*")])
    assert sorted({os.path.basename(s.path) for s in sources}) == ["img0.png", "img0_mask.png",
                                                                    "img1.png"]
    done = masksegx_cli("segment", folder, "-o", folder, "--method", "spectral", "--overwrite")
    assert done.returncode == 0, done.stderr
    assert "wrote 3 result(s)" in done.stdout and user_mask.read_bytes() != before


# ---- 4: truncated video ----------------------------------------------------------------------

def test_truncated_video_is_reported_and_its_frames_kept(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120))
    for k in range(5):
        writer.write(noise(k, 120, 160))
    writer.release()
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # the index and the last frames are gone
    done = masksegx_cli("segment", video, "-o", tmp_path / "out", "--method", "spectral")
    assert done.returncode == 1, done.stderr
    assert "clip.avi: the video ended after 3 of the 5 frames its container declares" in done.stderr
    assert [n for n in listing(tmp_path / "out") if n.endswith(".json")] == [
        "clip_f000000.json", "clip_f000001.json", "clip_f000002.json"]


# ---- 5: corrupt but decodable JPEG -------------------------------------------------------------

def test_damaged_jpeg_is_decoded_with_a_warning(tmp_path):
    path = tmp_path / "damaged.jpg"
    path.write_bytes(damaged_jpeg())
    with pytest.warns(io.DamagedImageWarning, match="damaged.jpg' is damaged, decoded anyway: "
                      "Corrupt JPEG data"):
        image = io.read_image(path)
    assert image.shape == (64, 64, 3)
    messages = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.read_image(path, on_warning=messages.append)
        io.read_image(bad_inputs.write_corpus(tmp_path / "corpus")["ok.jpg"])  # an intact JPEG: silent
    assert len(messages) == 1


def test_cli_segments_a_damaged_jpeg_warns_and_exits_1(tmp_path):
    folder = write_images(tmp_path / "in", 1)
    (folder / "damaged.jpg").write_bytes(damaged_jpeg())
    done = masksegx_cli("segment", folder, "-o", tmp_path / "out", "--method", "spectral")
    assert done.returncode == 1, done.stderr
    assert "damaged.jpg: warning: image file" in done.stderr and "Corrupt JPEG data" in done.stderr
    assert "wrote 2 result(s)" in done.stdout and (tmp_path / "out" / "damaged.json").exists()


# ---- 6: output paths checked before the work --------------------------------------------------

def make_dataset(root, values, count=2):
    """Images and masks whose mask pixels hold ``values[1]``, the rest ``values[0]``."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(count):
        image, truth = masked_face(80, 64, seed=k)
        cv2.imwrite(str(root / "images" / f"face{k}.jpg"), image)
        cv2.imwrite(str(root / "masks" / f"face{k}.png"), np.where(truth, values[1], values[0])
                    .astype(np.uint8))
    return root / "images", root / "masks"


def test_eval_seg_json_to_an_unwritable_path_fails_before_the_work(tmp_path):
    images, masks = make_dataset(tmp_path, (0, 255))
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    done = masksegx_cli("eval-seg", "--images", images, "--masks", masks, "--mask-value", 255,
                        "--method", "threshold", "--json", blocker / "scores.json")
    assert done.returncode == 2
    assert f"--json: cannot write '{blocker / 'scores.json'}': folder" in done.stderr
    assert "Traceback" not in done.stderr and "mIoU" not in done.stdout  # nothing was scored


@pytest.mark.parametrize("command", [
    ["eval-det", "--images", "x", "--annotations", "y"],
    ["eval-landmarks", "--images", "x", "--annotations", "y", "--format", "cuhk"],
    ["eval-attr", "--images", "x", "--annotations", "y", "--format", "mtfl"],
    ["eval-found", "--images", "x"],
])
def test_other_eval_commands_check_json_first(tmp_path, capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--json", str(tmp_path)])  # a folder; x and y are never looked at
    assert exit_info.value.code == 2
    assert "--json: cannot write" in capsys.readouterr().err


# ---- 9: Ctrl-C -------------------------------------------------------------------------------

def test_ctrl_c_with_workers_prints_one_line_and_exits_130(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "img0.png"), noise(0, 240, 320))
    for k in range(1, 200):
        shutil.copy(folder / "img0.png", folder / f"img{k}.png")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "masksegx", "segment", str(folder), "-o", str(out), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True,
        # As from a terminal: a suite started in the background by a shell without job control
        # inherits SIGINT ignored, and so would the command.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (out.is_dir() and any(n.endswith(".json") for n in os.listdir(out))):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole process group
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    assert stderr.strip() == "masksegx segment: interrupted"
    assert not [n for n in os.listdir(out) if n.endswith(".part")]


# ---- 10: eval readers say what they left out ----------------------------------------------------

def test_eval_seg_reports_unpaired_files_and_label_maps_read_as_binary(tmp_path):
    images, masks = make_dataset(tmp_path, (1, 2))  # label maps: 1 skin, 2 mask
    cv2.imwrite(str(images / "lonely.jpg"), noise(0))
    cv2.imwrite(str(masks / "stray_gt.png"), noise(0)[:, :, 0])
    pairing = match_files(images, masks)
    assert len(pairing.pairs) == 2
    assert [p.name for p in pairing.images_without_mask] == ["lonely.jpg"]
    assert [p.name for p in pairing.masks_without_image] == ["stray_gt.png"]
    with pytest.warns(MaskValueWarning, match="face0.png' holds only values 0..2"):
        assert not read_mask(masks / "face0.png", 255).any()
    done = masksegx_cli("eval-seg", "--images", images, "--masks", masks, "--mask-value", 255,
                        "--method", "threshold")
    assert done.returncode == 0, done.stderr
    assert "warning: 1 image(s) without a mask left out (lonely.jpg)" in done.stderr
    assert "warning: 1 mask(s) without an image left out (stray_gt.png)" in done.stderr
    assert "warning: 2 mask(s) hold only values 0..2, label maps" in done.stderr
    assert "--mask-value 2" in done.stderr
    done = masksegx_cli("eval-seg", "--images", images, "--masks", masks, "--mask-value", 2,
                        "--method", "threshold")
    assert done.returncode == 0 and "label maps" not in done.stderr


def test_json_is_written_whole(tmp_path, capsys):
    images, masks = make_dataset(tmp_path, (0, 255))
    out = tmp_path / "scores.json"
    out.write_text("an earlier result")
    assert main(["eval-seg", "--images", str(images), "--masks", str(masks), "--mask-value", "255",
                 "--method", "threshold", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["n_images"] == 2 and listing(tmp_path)[-1] == "scores.json"


def test_spectral_keeps_existing_files_and_reports_damage(tmp_path):
    folder = write_images(tmp_path / "in", 1)
    (folder / "damaged.jpg").write_bytes(damaged_jpeg())
    out = tmp_path / "out"
    out.mkdir()
    (out / "img0_overlay.jpg").write_bytes(b"the user's")
    done = masksegx_cli("spectral", folder / "img0.png", folder / "damaged.jpg", "-o", out)
    assert done.returncode == 1, done.stderr
    assert "img0_overlay.jpg' exists" in done.stderr and "damaged.jpg: warning:" in done.stderr
    assert (out / "img0_overlay.jpg").read_bytes() == b"the user's"
    assert listing(out) == ["damaged_mask.png", "damaged_overlay.jpg", "img0_overlay.jpg"]
    done = masksegx_cli("spectral", folder / "img0.png", "-o", out, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert (out / "img0_overlay.jpg").read_bytes() != b"the user's"
