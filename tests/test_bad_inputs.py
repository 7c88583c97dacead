"""The bad-input corpus (tests/bad_inputs.py) through the public entry points: every broken
input gets a TypeError/ValueError naming the problem (or, in the CLI, a message and exit code 1);
none crashes or hangs. Also the regression tests of what fuzzing found (fuzz/, .ci/ci-fuzz).

Policy: image FILES are converted by read_image (grayscale to three equal channels, alpha
dropped, 16-bit scaled to 8-bit); ARRAYS passed to the API are never converted, a wrong dtype
or channel count raises naming the expected one.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import bad_inputs
import masksegx
from masksegx import AttributePredictor, FaceDetector, FaceMaskSegmenter, MaskNet, nn, rle
from masksegx.eval.datasets import DatasetError, read_image, read_mask

TESTS = os.path.dirname(__file__)
# The folder holding the imported masksegx (the installed package in CI, python/ in a dev
# tree), so subprocesses import the same build as the tests.
PYTHON_DIR = os.path.dirname(os.path.dirname(masksegx.__file__))
LANDMARKS = np.array([[20, 25], [44, 25], [32, 35], [22, 48], [42, 48]], float)

UNDECODABLE = ["empty.jpg", "empty.png", "text.png", "truncated.png", "corrupt.png"]
# libjpeg may or may not recover a damaged JPEG: either outcome is fine, a crash is not.
DAMAGED_JPEG = ["truncated.jpg", "corrupt.jpg"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return bad_inputs.write_corpus(tmp_path_factory.mktemp("bad_inputs"))


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


# ---- files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", UNDECODABLE)
def test_undecodable_files_raise_dataset_error(corpus, name):
    with pytest.raises(DatasetError, match="cannot decode image file .*" + name):
        read_image(corpus[name])
    with pytest.raises(DatasetError, match="cannot decode"):
        read_mask(corpus[name], 255)


@pytest.mark.parametrize("name", DAMAGED_JPEG)
def test_damaged_jpeg_raises_or_decodes(corpus, name):
    try:
        image = read_image(corpus[name])
    except DatasetError as err:
        assert "cannot decode" in str(err)
    else:
        assert image.dtype == np.uint8 and image.shape == (48, 48, 3)


def test_missing_file_raises_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="cannot read image file"):
        read_image(tmp_path / "absent.png")


def _read_in_subprocess(path, arguments=""):
    """read_image in a child with a time limit: a decompression bomb must neither hang nor
    take the test run down with it."""
    code = ("import sys; from masksegx.eval.datasets import read_image\n"
            f"try:\n    read_image(sys.argv[1]{arguments})\n"
            "except ValueError as e:\n    print(e); sys.exit(3)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PYTHON_DIR, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                          timeout=60, env=env)


def test_bomb_header_is_rejected_before_decoding(corpus):
    # IHDR claims 100000 x 100000 (3e10 bytes): refused from the header, sides over 32768.
    done = _read_in_subprocess(corpus["bomb.png"])
    assert done.returncode == 3, done.stderr
    assert "bomb.png" in done.stdout and "side exceeds 32768 pixels" in done.stdout


def test_image_over_max_pixels_is_refused_from_its_header(corpus):
    # 30000 x 30000 passes OpenCV's 2**30 limit; a real one decodes to 2.7 GB (issue 15).
    done = _read_in_subprocess(corpus["bomb_in_limit.png"])
    assert done.returncode == 3, done.stderr
    assert ("bomb_in_limit.png' is 30000x30000 (900000000 pixels), over the limit of "
            "200000000 pixels") in done.stdout
    done = _read_in_subprocess(corpus["ok.png"], ", max_pixels=48 * 48 - 1")
    assert done.returncode == 3 and "over the limit of 2303 pixels" in done.stdout
    # Without the limit, OpenCV's header check passes it and the missing data ends the decode.
    done = _read_in_subprocess(corpus["bomb_in_limit.png"], ", max_pixels=None")
    assert done.returncode == 3, done.stderr
    assert "cannot decode image file" in done.stdout


def test_png_chunk_longer_than_the_file_is_rejected_before_decoding(corpus, tmp_path):
    name = "huge_chunk.png"
    # Fuzz finding: OpenCV allocated the 4 GB this 60-byte file's IDAT claims (9.6 s, 4.2 GB).
    done = _read_in_subprocess(corpus[name])
    assert done.returncode == 3, done.stderr
    assert "PNG chunk at byte 33 claims 4294965516 bytes" in done.stdout
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_mask(corpus[name], 2)
    fuzz_found = tmp_path / "oom.png"  # the fuzzer's own input: IHDR 100000 x 100000 too
    fuzz_found.write_bytes(bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000186a0000186a008020000002730"
        "9c9efffff90c49444154789c636018e2000000c10001ffffffffffff0029014f"
        "1d000000000049454e44ae426082"))
    with pytest.raises(DatasetError, match="PNG chunk at byte 33 claims"):
        read_image(fuzz_found)


def test_image_wider_than_max_side_is_rejected(corpus):
    with pytest.raises(DatasetError, match="side exceeds 32768 pixels .*1x40000"):
        read_image(corpus["wide.png"])


def test_files_are_converted_to_bgr_uint8(corpus):
    reference = read_image(corpus["ok.png"])
    gray = read_image(corpus["gray.png"])
    assert gray.shape == (48, 48, 3) and gray.dtype == np.uint8
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    np.testing.assert_array_equal(read_image(corpus["rgba.png"]), reference)  # alpha dropped
    np.testing.assert_array_equal(read_image(corpus["deep16.png"]), reference)  # 16 -> 8 bits
    assert read_image(corpus["pixel.png"]).shape == (1, 1, 3)


def test_cli_segment_reports_each_bad_file_and_exits_1(corpus, tmp_path):
    names = UNDECODABLE + ["bomb.png", "wide.png", "pixel.png", "gray.png"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PYTHON_DIR, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "masksegx", "segment", *(corpus[n] for n in names),
         str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == 1, done.stderr
    for name in UNDECODABLE + ["bomb.png", "wide.png", "missing.jpg"]:
        assert f"{name}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "wrote 2 result(s)" in done.stdout + done.stderr
    assert (tmp_path / "out" / "gray.json").is_file()


# ---- arrays ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def entry_points():
    segmenter = FaceMaskSegmenter()
    return {
        "FaceMaskSegmenter": segmenter,
        "detect_faces": masksegx.detect_faces,
        "predict_attributes": lambda x: masksegx.predict_attributes(x, LANDMARKS),
        "segment_learned": masksegx.segment_learned,
        "segment_fused": masksegx.segment_fused,
        "segment_spectral": masksegx.segment_spectral,
    }


ENTRY_POINTS = ["FaceMaskSegmenter", "detect_faces", "predict_attributes", "segment_learned",
                "segment_fused", "segment_spectral"]
BAD_ARRAYS = {
    "grayscale": (lambda im: im[..., 0], ValueError, r"expected shape \(H, W, 3\).*cvtColor"),
    "rgba": (lambda im: np.dstack([im, im[..., :1]]), ValueError, r"got \(64, 64, 4\)"),
    "uint16": (lambda im: im.astype(np.uint16) * 257, TypeError, "expected dtype uint8, got uint16"),
    "float32": (lambda im: im / np.float32(255), TypeError, "expected dtype uint8, got float32"),
    "nan": (lambda im: np.full(im.shape, np.nan), TypeError, "expected dtype uint8, got float64"),
    "bool": (lambda im: im > 127, TypeError, "expected dtype uint8, got bool"),
    "list": (lambda im: im.tolist(), TypeError, "expected a numpy.ndarray, got list"),
    "batch": (lambda im: im[None], ValueError, r"got \(1, 64, 64, 3\)"),
    "empty": (lambda im: im[:0], ValueError, "image is empty"),
    "too wide": (lambda im: np.zeros((1, 40000, 3), np.uint8), ValueError, "exceeds 32768"),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_bad_arrays_raise_naming_the_problem(entry_points, image, entry, case):
    make, error, message = BAD_ARRAYS[case]
    with pytest.raises(error, match="image: .*" + message):
        entry_points[entry](make(image))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_tiny_strided_and_read_only_arrays_work(entry_points, image, entry):
    entry_points[entry](image[:1, :1])  # 1x1: no face, but no error
    strided = np.repeat(image, 2, axis=1)[:, ::2]
    read_only = image.copy()
    read_only.flags.writeable = False
    if entry == "segment_spectral":  # deterministic and cheap: compare the results
        expected = masksegx.segment_spectral(image).mask
        np.testing.assert_array_equal(masksegx.segment_spectral(strided).mask, expected)
        np.testing.assert_array_equal(masksegx.segment_spectral(read_only).mask, expected)
    else:
        entry_points[entry](strided)
        entry_points[entry](read_only)


@pytest.mark.parametrize("call, message", [
    (lambda im: masksegx.predict_attributes(im, np.full((5, 2), np.nan)), "landmarks: contains NaN"),
    (lambda im: masksegx.predict_attributes(im, LANDMARKS * np.inf), "landmarks: contains NaN"),
    (lambda im: masksegx.segment_learned(im, (np.nan, 0, 10, 10)), "box: expected 4 finite"),
    (lambda im: masksegx.segment_fused(im, (0, 0, np.inf, 10)), "box: expected 4 finite"),
    (lambda im: masksegx.segment_spectral(im, region=(0, 0, np.inf, 10)),
     "region: box values must be finite"),
    (lambda im: masksegx.segment_spectral(im, region=(np.nan, 0, 10, 10)),
     "region: box values must be finite"),
    (lambda im: masksegx.detect_faces(im, min_face_size=np.nan), "min_face_size"),
    (lambda im: masksegx.detect_faces(im, thresholds=(np.nan, 0.7, 0.7)), "thresholds"),
    (lambda im: nn.relu(np.array([1.0, np.nan], np.float32)), "x: contains NaN"),
    (lambda im: masksegx.filters.local_variance(np.full((4, 4), np.inf, np.float32)), "values: contains NaN"),
])
def test_nan_and_inf_parameters_raise_value_error(image, call, message):
    with pytest.raises(ValueError, match=message):
        call(image)


# ---- model files -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def broken_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    (folder / "corrupt.onnx").write_bytes(b"garbage" * 10)
    (folder / "empty.onnx").write_bytes(b"")
    return {"missing": str(folder / "absent.onnx"), "corrupt": str(folder / "corrupt.onnx"),
            "empty": str(folder / "empty.onnx")}


LOADERS = {
    "FaceDetector": lambda path: FaceDetector(models=(path, path, path)),
    "FaceDetector onnxruntime": lambda path: FaceDetector(models=(path, path, path), backend="onnxruntime"),
    "AttributePredictor": AttributePredictor,
    "MaskNet": MaskNet,
}


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("kind", ["missing", "corrupt", "empty"])
def test_bad_model_files_raise_value_error(broken_models, loader, kind):
    message = "no such model file" if kind == "missing" else "onnx|ONNX"
    with pytest.raises(ValueError, match=message):
        LOADERS[loader](broken_models[kind])


def test_masknet_rejects_a_net_of_another_kind():
    # Fuzz finding: the attribute net ([N, 22] output) loaded, then segment() hit an IndexError.
    attributes = os.path.join(os.path.dirname(masksegx.__file__), "models", "attributes.onnx")
    with pytest.raises(ValueError, match="is not a mask net"):
        MaskNet(attributes)


# ---- fuzz findings (fuzz/fuzz_kernels.py) ----------------------------------------------------

def test_conv2d_huge_padding_or_stride_is_rejected():
    # Was int64 overflow in conv2d_output_shape (UBSan), or an output of exabytes.
    x, w = np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="padding exceeds 32768"):
        masksegx._core.conv2d(x, w, None, (1, 1), (2**62, 2**62), 1, None)
    with pytest.raises(ValueError, match="stride exceeds 32768"):
        nn.conv2d(x, w, stride=2**40)
    with pytest.raises(ValueError, match="output side exceeds 32768"):
        nn.conv2d(x, w, padding=20000)


def test_max_pool2d_huge_stride_is_rejected():
    with pytest.raises(ValueError, match="stride exceeds 32768"):
        masksegx._core.max_pool2d(np.zeros((1, 1, 2, 2), np.float32), (1, 1), (2**63 - 1, 1))


def test_resize_area_huge_output_is_rejected_before_allocating():
    # Was an 80 GB allocation for 5 boxes at (65535, 65535).
    with pytest.raises(ValueError, match=r"size: expected \(height, width\) in \[1, 32768\]"):
        nn.resize_area(np.zeros((1, 4, 4), np.float32), np.array([[0, 0, 2, 2]] * 5), 65535)
    with pytest.raises(ValueError, match="size"):
        masksegx._core.resize_area_boxes_u8(np.zeros((4, 4, 3), np.uint8),
                                            np.array([[0, 0, 2, 2]]), (1, 1 << 20))


def test_rle_decode_rejects_huge_or_infinite_sizes():
    # Seven characters of counts claimed 10**10 pixels and np.repeat allocated 9.3 GB.
    with pytest.raises(ValueError, match="exceeds 32768 pixels per side"):
        rle.decode({"size": [100000, 100000], "counts": rle._counts_to_string([10**10])})
    with pytest.raises(ValueError, match="rle: expected"):  # was OverflowError from int(inf)
        rle.decode({"size": [float("inf"), 1], "counts": ""})
