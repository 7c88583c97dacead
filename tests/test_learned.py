"""The learned segmentation path (masksegx.learned): MaskNet, segment_learned, segment_fused."""

import json

import cv2
import numpy as np
import pytest

import masksegx
from masksegx import learned
from masksegx.cli import main
from masksegx.detect import ModelNotFoundError
from masksegx.examples import EXAMPLES
from masksegx.learned import FusedParams, MaskNet, segment_fused, segment_learned
from masksegx.regions import fill_holes


@pytest.fixture(scope="module")
def net():
    return MaskNet()


@pytest.fixture(scope="module")
def examples():
    return [(cv2.imread(e.path), e.face_box) for e in EXAMPLES]


def face_crop(image, box, margin=1.4):
    """The square view around the box, as a stand-alone face photo (whole-image framing)."""
    x0, y0, side = learned.view_square(box, margin)
    h, w = image.shape[:2]
    pads = (max(-y0, 0), max(y0 + side - h, 0), max(-x0, 0), max(x0 + side - w, 0))
    padded = cv2.copyMakeBorder(image, *pads, cv2.BORDER_REPLICATE)
    top, left = y0 + pads[0], x0 + pads[2]
    return np.ascontiguousarray(padded[top : top + side, left : left + side])


def test_exported_from_package():
    assert masksegx.MaskNet is MaskNet
    assert masksegx.segment_learned is segment_learned
    assert masksegx.segment_fused is segment_fused
    assert masksegx.FusedParams is FusedParams


def test_probability_shape_range_dtype(net, examples):
    image, box = examples[0]
    for b in (None, box):
        prob = net.probability(image, b)
        assert prob.shape == image.shape[:2] and prob.dtype == np.float32
        assert prob.min() >= 0.0 and prob.max() <= 1.0


def test_box_view_is_zero_outside_its_square(net, examples):
    image, box = examples[0]
    prob = net.probability(image, box)
    x0, y0, side = learned.view_square(box)
    outside = np.ones(prob.shape, bool)
    outside[max(y0, 0) : y0 + side, max(x0, 0) : x0 + side] = False
    assert outside.any() and not prob[outside].any()


def test_box_partly_outside_the_image(net, examples):
    image, _ = examples[1]
    h, w = image.shape[:2]
    prob = net.probability(image, (w - 60.5, h - 50.0, w + 40.0, h + 70.0))
    assert prob.shape == (h, w) and np.isfinite(prob).all()
    assert not prob[: h - 200, : w - 200].any()


def test_segment_is_thresholded_probability(net, examples):
    image, box = examples[1]
    prob = net.probability(image, box)
    for threshold in (0.3, 0.5, 0.8):
        mask = net.segment(image, box, threshold)
        assert mask.dtype == np.bool_
        np.testing.assert_array_equal(mask, prob > threshold)
    np.testing.assert_array_equal(segment_learned(image, box), prob > 0.5)
    np.testing.assert_array_equal(segment_learned(image, box, model=net), prob > 0.5)


def test_tiny_and_non_square_images(net, rng):
    for shape in ((1, 1, 3), (7, 30, 3), (300, 40, 3)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        prob = net.probability(image)
        assert prob.shape == shape[:2] and 0 <= prob.min() and prob.max() <= 1


def test_non_contiguous_view_equals_copy(net, examples):
    image, box = examples[0]
    view = image[:, ::-1]
    np.testing.assert_array_equal(net.probability(view), net.probability(view.copy()))


def expectation(shape, box):
    """Loose expectation for a worn mask from the annotated face box (the examples' boxes are
    not tight: the navy mask reaches past it, the blue one is seen in profile): ``core`` = the
    box's centre half in x, 60-90 % of its height, which a worn mask covers; ``loose`` = the
    box widened by 30 % on each side and 30 % downwards, below 35 % of its height, where the
    mask's pixels lie."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    core = np.zeros(shape, bool)
    core[int(y0 + 0.6 * h) : int(y0 + 0.9 * h), int(x0 + 0.25 * w) : int(x0 + 0.75 * w)] = True
    loose = np.zeros(shape, bool)
    loose[int(y0 + 0.35 * h) : int(y1 + 0.3 * h), max(int(x0 - 0.3 * w), 0) : int(x1 + 0.3 * w)] = True
    return core, loose


def check_finds_mask(mask, box):
    core, loose = expectation(mask.shape, box)
    assert (mask & core).sum() > 0.5 * core.sum()
    assert (mask & loose).sum() > 0.8 * mask.sum()


@pytest.mark.parametrize("index", [0, 1])
def test_finds_the_mask_on_the_bundled_examples(net, examples, index):
    image, box = examples[index]
    check_finds_mask(net.segment(image, box), box)
    check_finds_mask(segment_fused(image, box, model=net), box)
    # whole-image framing of the face crop finds it too
    crop = face_crop(image, box)
    x0, y0, side = learned.view_square(box)
    check_finds_mask(net.segment(crop), tuple(np.array(box) - [x0, y0, x0, y0]))


def test_fused_cleans_the_learned_candidates(net, examples):
    image, box = examples[0]
    learned_mask = net.segment(image, box)
    fused = segment_fused(image, box, model=net)
    assert fused.dtype == np.bool_ and fused.shape == image.shape[:2]
    net_only = segment_fused(image, box, params=FusedParams(spectral_weight=0.0), model=net)
    assert not (net_only & ~fill_holes(learned_mask)).any()  # only removes, and fills holes
    keep_all = FusedParams(spectral_weight=0.0, p1=float("inf"), p2=float("inf"), min_area_share=0.0,
                           fill_holes=False)
    np.testing.assert_array_equal(segment_fused(image, box, params=keep_all, model=net), learned_mask)


def test_fused_nothing_above_threshold(net, rng):
    image = np.full((40, 50, 3), 128, np.uint8)
    mask = segment_fused(image, params=FusedParams(threshold=1.0), model=net)
    assert mask.shape == (40, 50) and not mask.any()


def test_fused_with_spectral_weight(net, examples):
    image, box = examples[1]
    for size in (96, 0):
        params = FusedParams(spectral_weight=0.3, spectral_size=size)
        check_finds_mask(segment_fused(image, box, params=params, model=net), box)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda n, im: n.probability(im.astype(np.float32)), TypeError, "image"),
        (lambda n, im: n.probability(im[..., 0]), ValueError, "image"),
        (lambda n, im: n.probability(im[:0]), ValueError, "image"),
        (lambda n, im: n.probability(im, (1, 2, 3)), ValueError, "box"),
        (lambda n, im: n.probability(im, (10, 10, 5, 20)), ValueError, "box"),
        (lambda n, im: n.probability(im, (1e4, 1e4, 2e4, 2e4)), ValueError, "box"),
        (lambda n, im: n.probability(im, (0, 0, float("nan"), 9)), ValueError, "box"),
        (lambda n, im: n.probability(im, "0,0,9,9"), TypeError, "box"),
        (lambda n, im: n.probability(im, 5), TypeError, "box"),
        (lambda n, im: n.segment(im, None, 1.5), ValueError, "threshold"),
        (lambda n, im: n.segment(im, None, "0.5"), TypeError, "threshold"),
        (lambda n, im: segment_fused(im, params={"threshold": 0.5}, model=n), TypeError, "params"),
        (lambda n, im: FusedParams(threshold=-0.1), ValueError, "threshold"),
        (lambda n, im: FusedParams(spectral_weight=2), ValueError, "spectral_weight"),
        (lambda n, im: FusedParams(variance_window=4), ValueError, "variance_window"),
        (lambda n, im: FusedParams(spectral_size=4), ValueError, "spectral_size"),
        (lambda n, im: FusedParams(p2=0), ValueError, "p2"),
    ],
)
def test_bad_inputs_name_the_argument(net, call, error, name):
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(error, match=name):
        call(net, image)


def test_bad_constructor_arguments(tmp_path):
    with pytest.raises(ValueError, match="threads"):
        MaskNet(threads=0)
    with pytest.raises(TypeError, match="threads"):
        MaskNet(threads=1.5)
    with pytest.raises(TypeError, match="model"):
        MaskNet(model=3)
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelNotFoundError, match="model"):
        MaskNet(missing)
    with pytest.raises(FileNotFoundError):
        segment_learned(np.zeros((8, 8, 3), np.uint8), model=missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx file at all")
    with pytest.raises(ValueError, match="model"):
        MaskNet(corrupt)
    with pytest.raises(ValueError, match="not a mask net"):
        MaskNet(learned.MODEL_DIR / "ds_mtcnn_rnet.onnx")  # one input, but two outputs and 24x24


def test_sessions_are_shared(net):
    other = MaskNet()
    assert other._net is net._net and other.input_size == net.input_size
    assert "masknet.onnx" in repr(other)


def test_eval_seg_learned_and_fused(tmp_path, examples, capsys):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    net = MaskNet()
    for k, (image, box) in enumerate(examples):
        crop = face_crop(image, box)
        cv2.imwrite(str(images / f"f{k}.png"), crop)
        # truth = the net's own answer: the command must reproduce it exactly (plumbing check)
        cv2.imwrite(str(masks / f"f{k}.png"), net.segment(crop).astype(np.uint8) * 255)
    for method in ("learned", "fused"):
        for faces in ("whole-image", "detect"):
            out = tmp_path / f"{method}_{faces}.json"
            args = ["eval-seg", "--images", str(images), "--masks", str(masks), "--mask-value", "255",
                    "--method", method, "--faces", faces, "--json", str(out)]
            assert main(args) == 0
            record = json.loads(out.read_text())
            assert record["n_images"] == 2 and record["method"] == method
            if (method, faces) == ("learned", "whole-image"):
                assert record["miou"] == 1.0
            assert record["miou"] > (0.9 if faces == "whole-image" else 0.6)
            if faces == "detect":
                assert record["faces_mode"] == "detect" and "images_without_face" in record
    # another net through --model; a missing one is a clean error
    args = ["eval-seg", "--images", str(images), "--masks", str(masks), "--mask-value", "255",
            "--method", "learned", "--model", str(tmp_path / "missing.onnx")]
    assert main(args) == 2
    assert "no such model file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval-seg", "--images", str(images), "--masks", str(masks), "--mask-value", "255",
              "--method", "threshold", "--model", "x.onnx"])


def test_eval_seg_step_selects_every_kth_pair(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    image = np.full((24, 24, 3), 90, np.uint8)
    for k in range(6):
        cv2.imwrite(str(images / f"i{k}.png"), image)
        cv2.imwrite(str(masks / f"i{k}.png"), np.zeros((24, 24), np.uint8))
    out = tmp_path / "s.json"
    args = ["eval-seg", "--images", str(images), "--masks", str(masks), "--mask-value", "255",
            "--method", "threshold", "--step", "4", "--json", str(out)]
    assert main(args) == 0
    assert json.loads(out.read_text())["n_images"] == 2  # indices 0 and 4


def test_backends_give_the_same_probability(examples):
    native, reference = MaskNet(backend="native"), MaskNet(backend="onnxruntime")
    assert "native" in repr(native)
    for image, box in examples:
        for view in (box, None):
            np.testing.assert_allclose(native.probability(image, view),
                                       reference.probability(image, view), atol=1e-5)


def test_views_of_several_boxes_in_one_batch_equal_one_at_a_time(net, examples):
    image, box = examples[0]
    boxes = [box, None, (box[0] - 40, box[1] - 30, box[2] - 20, box[3])]
    batched = net._view_probabilities(image, boxes)
    for one, view in zip(boxes, batched):
        alone = net.view_probability(image, one)
        assert alone[1] == view[1]
        np.testing.assert_allclose(alone[0], view[0], atol=1e-6)
