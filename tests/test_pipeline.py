"""FaceMaskSegmenter: the whole pipeline on the bundled photos, its constraints and bad input."""

import threading
from dataclasses import astuple

import cv2
import numpy as np
import pytest

import masksegx
from masksegx.examples import EXAMPLES
from masksegx.pipeline import Face, FaceMaskSegmenter, GenderPriors, SegmentationPrior


@pytest.fixture(scope="module")
def photo():
    return cv2.imread(EXAMPLES[0].path)


@pytest.fixture(scope="module")
def segmenter():
    return FaceMaskSegmenter()


def _box_iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.path.rsplit("/", 1)[-1])
def test_finds_the_masked_face_and_its_mask(segmenter, example):
    image = cv2.imread(example.path)
    faces = segmenter(image)
    assert faces and all(isinstance(f, Face) for f in faces)
    best = max(faces, key=lambda f: _box_iou(f.box, example.face_box))
    # The VOC boxes are not square while MTCNN boxes are: IoU ~0.5 on the close-up photo.
    assert _box_iou(best.box, example.face_box) > 0.45
    assert best.mask.shape == image.shape[:2] and best.mask.dtype == bool
    x0, y0, x1, y1 = example.face_box
    inside = best.mask[y0:y1, x0:x1].sum()
    # The mask is a sizeable part of the face box, lies below the eyes and not elsewhere.
    assert 0.15 < inside / ((x1 - x0) * (y1 - y0)) < 0.8
    assert inside > 0.75 * best.mask.sum()  # real masks reach past the annotated box a little
    eye_line = best.landmarks[:2, 1].mean()
    assert best.mask[: int(eye_line)].sum() < 0.1 * best.mask.sum()
    assert best.wearing != "none" and best.coverage > 1.0


def test_face_fields(segmenter, photo):
    face = segmenter(photo)[0]
    assert face.box.shape == (4,) and face.landmarks.shape == (5, 2)
    assert face.gender in ("female", "male") and 0.0 <= face.gender_prob <= 1.0
    assert (face.gender == "male") == (face.gender_prob >= 0.5)
    assert face.coverage_probs.shape == (11,)
    np.testing.assert_allclose(face.coverage_probs.sum(), 1.0, atol=1e-4)
    np.testing.assert_allclose(face.coverage, (np.arange(11) * face.coverage_probs).sum(), atol=1e-4)
    assert face.wearing in ("none", "incorrect", "correct")


@pytest.mark.parametrize("method", ["spectral", "learned", "fused"])
def test_every_method_segments_the_example(photo, method):
    faces = FaceMaskSegmenter(method=method)(photo)
    best = max(faces, key=lambda f: _box_iou(f.box, EXAMPLES[0].face_box))
    x0, y0, x1, y1 = EXAMPLES[0].face_box
    assert best.mask[y0:y1, x0:x1].mean() > 0.1


def test_whole_image_mode_returns_one_face_covering_the_crop(photo):
    x0, y0, x1, y1 = EXAMPLES[0].face_box
    crop = np.ascontiguousarray(photo[y0:y1, x0:x1])
    faces = FaceMaskSegmenter(faces="whole-image")(crop)
    assert len(faces) == 1
    np.testing.assert_array_equal(faces[0].box, [0, 0, crop.shape[1] - 1, crop.shape[0] - 1])
    assert faces[0].mask.shape == crop.shape[:2] and faces[0].mask.mean() > 0.15


def test_whole_image_mode_without_a_detection_guesses_landmarks():
    flat = np.full((120, 100, 3), 128, np.uint8)
    faces = FaceMaskSegmenter(faces="whole-image")(flat)
    assert len(faces) == 1 and faces[0].score == 0.0
    assert faces[0].landmarks[0, 0] < faces[0].landmarks[1, 0]  # eyes left to right


def test_no_face_gives_an_empty_list(segmenter):
    assert segmenter(np.full((240, 320, 3), 90, np.uint8)) == []


def test_concurrent_calls_match_sequential(segmenter, photo):
    expected = [f.mask for f in segmenter(photo)]
    results = [None] * 4

    def work(k):
        results[k] = [f.mask for f in segmenter(photo)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for masks in results:
        assert len(masks) == len(expected)
        for got, want in zip(masks, expected):
            np.testing.assert_array_equal(got, want)


def test_soft_gender_prior_blends_and_falls_back_to_neutral():
    priors = GenderPriors(
        female=SegmentationPrior(0.4, 0.3), male=SegmentationPrior(0.6, 0.5),
        neutral=SegmentationPrior(0.5, 0.45), confidence=0.8,
    )
    assert astuple(priors.resolve(0.9, "soft")) == pytest.approx((0.58, 0.48))
    assert astuple(priors.resolve(0.1, "soft")) == pytest.approx((0.42, 0.32))
    assert priors.resolve(0.7, "soft") == SegmentationPrior(0.5, 0.45)  # not confident
    assert priors.resolve(0.7, "hard") == SegmentationPrior(0.6, 0.5)
    assert priors.resolve(0.3, "hard") == SegmentationPrior(0.4, 0.3)
    assert priors.resolve(0.99, "none") == SegmentationPrior(0.5, 0.45)


def test_coverage_constraint_empties_the_mask_of_an_unmasked_face(photo):
    always = FaceMaskSegmenter(coverage_constraint=True, no_mask_probability=0.0)
    assert all(not f.mask.any() for f in always(photo))
    assert FaceMaskSegmenter(no_mask_probability=0.0)(photo)[0].mask.any()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"method": "magic"}, ValueError),
        ({"gender_constraint": "strict"}, ValueError),
        ({"faces": "all"}, ValueError),
        ({"threads": 0}, ValueError),
        ({"threads": 1.5}, TypeError),  # one rule for every threads argument
        ({"coverage_constraint": "yes"}, TypeError),
        ({"no_mask_probability": 2.0}, ValueError),
        ({"min_face_size": 0}, ValueError),
    ],
)
def test_bad_settings(kwargs, error):
    with pytest.raises(error):
        FaceMaskSegmenter(**kwargs)


@pytest.mark.parametrize(
    "image, error",
    [
        (np.zeros((50, 50, 3), np.float32), TypeError),
        (np.zeros((50, 50), np.uint8), ValueError),
        (np.zeros((50, 50, 4), np.uint8), ValueError),
        (np.zeros((0, 50, 3), np.uint8), ValueError),
        ("photo.jpg", TypeError),
    ],
)
def test_bad_images(segmenter, image, error):
    with pytest.raises(error, match="image"):
        segmenter(image)


def test_non_contiguous_input_gives_the_contiguous_result(segmenter, photo):
    wide = np.zeros((photo.shape[0], 2 * photo.shape[1], 3), np.uint8)
    wide[:, ::2] = photo
    strided = wide[:, ::2]
    assert not strided.flags.c_contiguous
    expected, got = segmenter(photo), segmenter(strided)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.mask, b.mask)


def test_exported_at_top_level():
    assert masksegx.FaceMaskSegmenter is FaceMaskSegmenter


@pytest.fixture(scope="module")
def three_faces():
    from masksegx.examples import MULTI_FACE_EXAMPLE

    return cv2.imread(MULTI_FACE_EXAMPLE.path)


def test_the_multi_face_example_has_its_three_faces(segmenter, three_faces):
    from masksegx.examples import MULTI_FACE_EXAMPLE

    faces = segmenter(three_faces)
    assert three_faces.shape == (480, 640, 3) and len(faces) == 3
    for annotated in MULTI_FACE_EXAMPLE.face_boxes:
        assert max(_box_iou(face.box, annotated) for face in faces) > 0.5


def _same_faces(a, b, *, mask_share=0.0, probability=1e-5):
    """Equal boxes and attributes; masks equal but for ``mask_share`` of each mask's pixels
    (a probability a float rounding away from the threshold may fall either side)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.box, y.box, atol=1e-3)
        np.testing.assert_allclose(x.coverage_probs, y.coverage_probs, atol=probability)
        assert x.wearing == y.wearing and x.gender == y.gender
        assert np.count_nonzero(x.mask != y.mask) <= mask_share * max(1, x.mask.sum())


@pytest.mark.parametrize("method", ["fused", "learned"])
def test_native_and_onnxruntime_backends_agree(three_faces, method):
    native = FaceMaskSegmenter(method, backend="native")
    reference = FaceMaskSegmenter(method, backend="onnxruntime")
    assert native.masknet.backend == "native" and reference.attributes.backend == "onnxruntime"
    # The same detections for both: a landmark a float rounding apart can move a pixel of the
    # aligned uint8 crop by one grey level.
    reference.detector = native.detector
    _same_faces(native(three_faces), reference(three_faces), mask_share=0.002)


@pytest.mark.parametrize("backend", ["native", "onnxruntime"])
def test_more_threads_give_the_same_faces(three_faces, backend):
    one = FaceMaskSegmenter(backend=backend)(three_faces)
    _same_faces(FaceMaskSegmenter(threads=2, backend=backend)(three_faces), one)
    _same_faces(FaceMaskSegmenter(threads=3, backend=backend)(three_faces), one)


@pytest.mark.parametrize(
    "settings",
    [{"gender_constraint": "hard"}, {"coverage_constraint": True}, {"method": "spectral"}],
)
def test_more_threads_give_the_same_faces_where_masks_wait_for_the_attributes(
    three_faces, settings
):
    one = FaceMaskSegmenter(**settings)(three_faces)
    _same_faces(FaceMaskSegmenter(threads=2, **settings)(three_faces), one)


def test_batched_masks_equal_one_face_at_a_time(three_faces):
    """One MaskNet batch for the image gives each face the mask of its own call."""
    faces = FaceMaskSegmenter("learned")(three_faces)
    net = masksegx.learned.MaskNet()
    for face in faces:
        alone = net.segment(three_faces, face.box, threshold=0.5)
        assert np.count_nonzero(alone != face.mask) <= 0.002 * max(1, alone.sum())


@pytest.mark.parametrize("backend, error", [("torch", ValueError), (1, TypeError)])
def test_bad_backend(backend, error):
    with pytest.raises(error, match="backend"):
        FaceMaskSegmenter(backend=backend)
    with pytest.raises(error, match="backend"):
        masksegx.learned.MaskNet(backend=backend)
    with pytest.raises(error, match="backend"):
        masksegx.attributes.AttributePredictor(backend=backend)
