"""Bounds and parameter types (issue 15, items 7 and 8).

Item 7: sizes that could allocate without limit are bounded. A face box far larger than the
image is clipped to the image's reach (the image widened by its larger side, at least 128 px)
and only the image's part of its view is resampled; a box partly outside the image is used as
it is (faces at the border); a box outside the image or with x2 <= x1 raises ValueError naming
``box``. ``align_face`` crops are at most 4096 px; landmarks beyond the image's reach, pyramid
settings that grow without bound and oversized windows or cluster counts raise ValueError.

Item 8: a parameter of the wrong type raises TypeError naming it when the object is made (or
the function called), not deep inside numpy or at the first call.
"""

import dataclasses
import tracemalloc

import cv2
import numpy as np
import pytest

import masksegx
import onnx_builder
from masksegx import (
    AttributePredictor,
    FaceDetector,
    FaceMaskSegmenter,
    FusedParams,
    MaskNet,
    SpectralParams,
    align,
    boxes,
    color,
    compensate,
    fcm,
    regions,
    synthesis,
)
from masksegx.attributes import METADATA_KEY
from masksegx.examples import EXAMPLES
from masksegx.learned import view_square
from masksegx.pipeline import GenderPriors, SegmentationPrior

LANDMARKS = np.array([[20, 25], [44, 25], [32, 35], [22, 48], [42, 48]], float)
HUGE_BOX = (-1e6, -1e6, 1e6, 1e6)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def face():
    """The bundled example photo shrunk to 100x100: a face filling the image."""
    example = EXAMPLES[0]
    x0, y0, x1, y1 = example.face_box
    photo = cv2.imread(example.path, cv2.IMREAD_COLOR)[y0:y1, x0:x1]
    return cv2.resize(photo, (100, 100), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def net():
    return MaskNet()


def _peak_bytes(call):
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---- item 7: boxes ------------------------------------------------------------------------

BOX_ENTRY_POINTS = {
    "segment_fused": lambda net, im, box: masksegx.segment_fused(im, box, model=net),
    "segment_learned": lambda net, im, box: masksegx.segment_learned(im, box, model=net),
    "MaskNet.segment": lambda net, im, box: net.segment(im, box),
    "MaskNet.probability": lambda net, im, box: net.probability(im, box),
}


@pytest.mark.parametrize("entry", list(BOX_ENTRY_POINTS))
@pytest.mark.parametrize("box", [HUGE_BOX, (-1e300, -1e300, 1e300, 1e300)])
def test_a_box_far_larger_than_the_image_stays_in_proportion_to_the_image(net, image, entry, box):
    call = BOX_ENTRY_POINTS[entry]
    peak = _peak_bytes(lambda: call(net, image, box))
    assert peak < 20_000_000  # a 1e6-pixel square view would be 4 TB
    assert call(net, image, box).shape == image.shape[:2]


@pytest.mark.parametrize("entry", list(BOX_ENTRY_POINTS))
def test_a_box_is_clipped_to_the_image_reach(net, image, entry):
    call = BOX_ENTRY_POINTS[entry]
    reach = 128  # 64x64 image: the reach's floor
    np.testing.assert_array_equal(call(net, image, HUGE_BOX),
                                  call(net, image, (-reach, -reach, 64 + reach, 64 + reach)))


@pytest.mark.parametrize("box, shift", [
    ((-30, -20, 90, 100), 40),       # partly outside: the square is resized whole
    ((-100, -100, 200, 200), 110),   # a view much larger than the image: only its part
])
def test_a_box_partly_outside_sees_the_border_replicated(net, face, box, shift):
    """A face at the border keeps its view: the same probability as on the image padded by
    replicating its border, where the box lies inside."""
    padded = cv2.copyMakeBorder(face, shift, shift, shift, shift, cv2.BORDER_REPLICATE)
    moved = tuple(v + shift for v in box)
    expected = net.probability(padded, moved)[shift:-shift, shift:-shift]
    np.testing.assert_allclose(net.probability(face, box), expected, atol=1e-5)


@pytest.mark.parametrize("entry", list(BOX_ENTRY_POINTS))
@pytest.mark.parametrize("box", [
    (100, 100, 200, 200),   # entirely outside
    (-50, -50, -1, -1),     # entirely outside, above-left
    (30, 10, 30, 40),       # x2 == x1
    (40, 10, 20, 40),       # x2 < x1
    (10, 40, 40, 10),       # y2 < y1
])
def test_a_box_outside_the_image_or_empty_raises(net, image, entry, box):
    with pytest.raises(ValueError, match="box"):
        BOX_ENTRY_POINTS[entry](net, image, box)


def test_spectral_region_is_clipped_to_the_image(image):
    whole = masksegx.segment_spectral(image).mask
    for region in (HUGE_BOX, (-1e300, -1e300, 1e300, 1e300)):
        result = masksegx.segment_spectral(image, region=region)
        assert result.box == (0, 0, 64, 64)
        np.testing.assert_array_equal(result.mask, whole)


@pytest.mark.parametrize("region", [(100, 100, 200, 200), (30, 10, 30, 40), (40, 10, 20, 40)])
def test_spectral_region_outside_or_empty_raises(image, region):
    with pytest.raises(ValueError, match="region"):
        masksegx.segment_spectral(image, region=region)


# ---- item 7: crop sizes, landmarks, windows, pyramids ---------------------------------------

@pytest.mark.parametrize("size", [40000, align.MAX_CROP_SIZE + 1, align.MIN_CROP_SIZE - 1])
def test_align_face_size_is_bounded(image, size):
    with pytest.raises(ValueError, match="size"):
        align.align_face(image, LANDMARKS, size=size)
    with pytest.raises(ValueError, match="size"):
        align.canonical_points(size)


def test_align_face_largest_size_works():
    assert align.canonical_points(align.MAX_CROP_SIZE).shape == (5, 2)


FAR = {
    "a million pixels off": LANDMARKS * 1e6,
    "just beyond the reach": LANDMARKS + [64 + 128 + 1 - 20, 0],
    "far above": LANDMARKS - [0, 1000],
    "one face of a batch": np.stack([LANDMARKS, LANDMARKS - 5000]),
}


@pytest.fixture(scope="module")
def predictor():
    return AttributePredictor()


@pytest.mark.parametrize("case", list(FAR))
def test_landmarks_far_outside_the_image_raise(predictor, image, case):
    points = FAR[case]
    for call in (predictor, predictor.joint_probs, predictor.preprocess, masksegx.predict_attributes):
        with pytest.raises(ValueError, match="landmarks: points lie more than"):
            call(image, points)


def test_landmarks_of_a_face_at_the_border_work(predictor, image):
    for points in (LANDMARKS - [40, 0], LANDMARKS + [0, 40], LANDMARKS + [64 + 128 - 44, 0]):
        assert predictor(image, points)[0].gender in ("female", "male")
    # A tiny crop still takes the landmarks of the face around it (the reach's floor).
    assert masksegx.predict_attributes(image[:1, :1], LANDMARKS).gender in ("female", "male")


def test_attribute_model_with_oversized_crop_is_refused(tmp_path):
    graph = onnx_builder.model([onnx_builder.node("Identity", ["x"], ["y"])], {},
                               [("x", ["N", 22])], [("y", ["N", 22])])
    entry = onnx_builder._str_field(1, METADATA_KEY) + onnx_builder._str_field(
        2, '{"crop_size": 40000}')
    path = tmp_path / "huge_crop.onnx"
    path.write_bytes(graph + onnx_builder._bytes_field(14, entry))
    with pytest.raises(ValueError, match="crop_size"):
        AttributePredictor(path)


@pytest.mark.parametrize("make, name", [
    (lambda: SpectralParams(variance_window=10**6), "variance_window"),
    (lambda: FusedParams(variance_window=10**6), "variance_window"),
    (lambda: SpectralParams(clusters=10**6), "clusters"),
    (lambda: FusedParams(spectral_size=10**9), "spectral_size"),
    (lambda: FaceDetector(min_face_size=1), "min_face_size"),
    (lambda: FaceDetector(scale_factor=0.9999), "scale_factor"),
    (lambda: FaceMaskSegmenter(min_face_size=0.5), "min_face_size"),
    (lambda: view_square((0, 0, 10, 10), margin=np.inf), "margin"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_sizes_that_would_grow_without_bound_raise(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_pyramid_bounds_keep_the_usual_settings():
    assert FaceDetector(min_face_size=3, scale_factor=0.95).scale_factor == 0.95
    assert FaceDetector(min_face_size=12).min_face_size == 12


# ---- item 8: parameter objects and arguments of the wrong type ---------------------------

WRONG_TYPES = {
    "FaceMaskSegmenter(spectral_params=dict)":
        (lambda: FaceMaskSegmenter(method="spectral", spectral_params={"top": 0.5}), "spectral_params"),
    "FaceMaskSegmenter(spectral_params={})":
        (lambda: FaceMaskSegmenter(spectral_params={}), "spectral_params"),
    "FaceMaskSegmenter(fused_params={})": (lambda: FaceMaskSegmenter(fused_params={}), "fused_params"),
    "FaceMaskSegmenter(priors={})": (lambda: FaceMaskSegmenter(priors={}), "priors"),
    "FaceMaskSegmenter(priors=SpectralParams)":
        (lambda: FaceMaskSegmenter(priors=SpectralParams()), "priors"),
    "FaceMaskSegmenter(no_mask_probability='x')":
        (lambda: FaceMaskSegmenter(no_mask_probability="x"), "no_mask_probability"),
    "FaceMaskSegmenter(no_mask_probability='0.5')":
        (lambda: FaceMaskSegmenter(no_mask_probability="0.5"), "no_mask_probability"),
    "FaceMaskSegmenter(coverage_constraint=1)":
        (lambda: FaceMaskSegmenter(coverage_constraint=1), "coverage_constraint"),
    "FaceMaskSegmenter(method=list)": (lambda: FaceMaskSegmenter(method=["fused"]), "method"),
    "segment_spectral(params={})":
        (lambda: masksegx.segment_spectral(np.zeros((8, 8, 3), np.uint8), params={}), "params"),
    "segment_spectral(params=FusedParams)":
        (lambda: masksegx.segment_spectral(np.zeros((8, 8, 3), np.uint8), params=FusedParams()),
         "params"),
    "segment_fused(params={})":
        (lambda: masksegx.segment_fused(np.zeros((8, 8, 3), np.uint8), params={}), "params"),
    "FusedParams(spectral_size='96')": (lambda: FusedParams(spectral_size="96"), "spectral_size"),
    "FusedParams(spectral_size=96.0)": (lambda: FusedParams(spectral_size=96.0), "spectral_size"),
    "FusedParams(threshold='0.5')": (lambda: FusedParams(threshold="0.5"), "threshold"),
    "FusedParams(spectral_weight=None)": (lambda: FusedParams(spectral_weight=None), "spectral_weight"),
    "FusedParams(p1='8')": (lambda: FusedParams(p1="8"), "p1"),
    "FusedParams(min_area_share=[0.1])": (lambda: FusedParams(min_area_share=[0.1]), "min_area_share"),
    "FusedParams(variance_window=5.0)": (lambda: FusedParams(variance_window=5.0), "variance_window"),
    "FusedParams(fill_holes='yes')": (lambda: FusedParams(fill_holes="yes"), "fill_holes"),
    "SpectralParams(sharpen='0.5')": (lambda: SpectralParams(sharpen="0.5"), "sharpen"),
    "SpectralParams(nbri_weight=None)": (lambda: SpectralParams(nbri_weight=None), "nbri_weight"),
    "SpectralParams(skin_probe='top')": (lambda: SpectralParams(skin_probe="top"), "skin_probe"),
    "SpectralParams(mask_probe=(0.6, '0.85', 0.35, 0.65))":
        (lambda: SpectralParams(mask_probe=(0.6, "0.85", 0.35, 0.65)), "mask_probe"),
    "SpectralParams(clusters=3.0)": (lambda: SpectralParams(clusters=3.0), "clusters"),
    "SpectralParams(max_iter='20')": (lambda: SpectralParams(max_iter="20"), "max_iter"),
    "SpectralParams(membership_threshold='x')":
        (lambda: SpectralParams(membership_threshold="x"), "membership_threshold"),
    "SpectralParams(p2=None)": (lambda: SpectralParams(p2=None), "p2"),
    "SpectralParams(connectivity='8')": (lambda: SpectralParams(connectivity="8"), "connectivity"),
    "SpectralParams(require_mask_probe=1)":
        (lambda: SpectralParams(require_mask_probe=1), "require_mask_probe"),
    "SegmentationPrior('0.5', 0.4)": (lambda: SegmentationPrior("0.5", 0.4), "threshold"),
    "GenderPriors(female=tuple)": (lambda: GenderPriors(female=(0.5, 0.4)), "female"),
    "GenderPriors(confidence='high')": (lambda: GenderPriors(confidence="high"), "confidence"),
    "FaceDetector(min_face_size='20')": (lambda: FaceDetector(min_face_size="20"), "min_face_size"),
    "FaceDetector(scale_factor=None)": (lambda: FaceDetector(scale_factor=None), "scale_factor"),
    "FaceDetector(mirror_landmarks=1)":
        (lambda: FaceDetector(mirror_landmarks=1), "mirror_landmarks"),
    "AttributePredictor(mirror='no')": (lambda: AttributePredictor(mirror="no"), "mirror"),
    "MaskNet(threads='2')": (lambda: MaskNet(threads="2"), "threads"),
    "align_face(size=112.0)":
        (lambda: align.align_face(np.zeros((8, 8, 3), np.uint8), LANDMARKS, size=112.0), "size"),
    "view_square(margin='1.4')": (lambda: view_square((0, 0, 10, 10), margin="1.4"), "margin"),
}


@pytest.mark.parametrize("case", list(WRONG_TYPES))
def test_wrong_types_raise_type_error_naming_the_parameter(case):
    make, name = WRONG_TYPES[case]
    with pytest.raises(TypeError, match=f"^{name}: expected"):
        make()


@pytest.fixture(scope="module")
def components():
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    return regions.analyze(mask)


KERNEL_WRONG_TYPES = {
    "geometric_filter(p1='8')": (lambda c: regions.geometric_filter(c, "8", 0.5), "p1"),
    "geometric_filter(p2=None)": (lambda c: regions.geometric_filter(c, 8.0, None), "p2"),
    "geometric_filter(components=dict)": (lambda c: regions.geometric_filter({}, 8.0, 0.5), "components"),
    "spectral_maps(with_hsi='no')":
        (lambda c: color.spectral_maps(np.zeros((4, 4, 3), np.uint8), with_hsi="no"), "with_hsi"),
    "blue_suppression(mu='x')":
        (lambda c: compensate.blue_suppression(np.zeros((4, 4, 3), np.uint8),
                                               np.ones((4, 4), bool), "x"), "mu"),
    "gray_world_minkowski(t='6')":
        (lambda c: compensate.gray_world_minkowski(np.zeros((4, 4, 3), np.uint8),
                                                   np.ones((4, 4), bool), "6"), "t"),
    "minkowski_illuminant(scale=None)":
        (lambda c: compensate.minkowski_illuminant(np.zeros((4, 4, 3), np.uint8),
                                                   np.ones((4, 4), bool), scale=None), "scale"),
    "compensate_region(strength='1')":
        (lambda c: compensate.compensate_region(np.zeros((4, 4, 3), np.uint8),
                                                np.ones((4, 4), bool), strength="1"), "strength"),
    "fuzzy_cmeans(m='2')":
        (lambda c: fcm.fuzzy_cmeans(np.zeros((5, 2), np.float32), 2, m="2"), "m"),
    "fuzzy_cmeans(tol='0')":
        (lambda c: fcm.fuzzy_cmeans(np.zeros((5, 2), np.float32), 2, tol="0"), "tol"),
    "fuzzy_cmeans(k=True)": (lambda c: fcm.fuzzy_cmeans(np.zeros((5, 2), np.float32), True), "k"),
    "iou_exclusive(strings)":
        (lambda c: boxes.iou_exclusive([["1", "2", "3", "4"]], [[0, 0, 1, 1]]), "boxes_a"),
    "nms_exclusive(strings)":
        (lambda c: boxes.nms_exclusive([["0", "0", "1", "1"]], [0.5], 0.5), "boxes"),
}


@pytest.mark.parametrize("case", list(KERNEL_WRONG_TYPES))
def test_kernel_arguments_of_the_wrong_type_raise(components, case):
    call, name = KERNEL_WRONG_TYPES[case]
    with pytest.raises(TypeError, match=f"^{name}: expected"):
        call(components)


def test_apply_mask_coverage_of_the_wrong_type_raises():
    template = synthesis.MaskTemplate("t", np.zeros((8, 8, 4), np.uint8), np.zeros((6, 2)))
    with pytest.raises(TypeError, match="^coverage: expected a number"):
        synthesis.apply_mask(np.zeros((64, 64, 3), np.uint8), LANDMARKS, template, coverage="x")
    with pytest.raises(TypeError, match="^color: expected"):
        synthesis.apply_mask(np.zeros((64, 64, 3), np.uint8), LANDMARKS, template, color="red")


@pytest.mark.parametrize("make, name", [
    (lambda: GenderPriors().resolve(0.5, "sof"), "mode"),
    (lambda: GenderPriors().resolve(1.5, "soft"), "p_male"),
    (lambda: GenderPriors(confidence=1.5), "confidence"),
    (lambda: SegmentationPrior(0.5, -0.1), "membership_threshold"),
    (lambda: SpectralParams(sharpen=-1.0), "sharpen"),
    (lambda: SpectralParams(p1=np.inf), "p1"),
    (lambda: SpectralParams(minkowski_t=0.5), "minkowski_t"),
    (lambda: SpectralParams(compensation_strength=np.nan), "compensation_strength"),
    (lambda: SpectralParams(mask_probe=(0.6, 0.85, 0.35)), "mask_probe"),
    (lambda: FusedParams(min_area_share=np.nan), "min_area_share"),
    (lambda: FaceMaskSegmenter(no_mask_probability=np.nan), "no_mask_probability"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_out_of_range_values_raise_value_error(make, name):
    with pytest.raises(ValueError, match=f"^{name}: expected"):
        make()


def test_valid_params_are_unchanged():
    """Lists become tuples (the params stay hashable); numbers and defaults are kept."""
    params = SpectralParams(skin_probe=[0.15, 0.4, 0.2, 0.8], clusters=np.int64(3))
    assert params.skin_probe == SpectralParams().skin_probe
    assert hash(params) == hash(dataclasses.replace(params))
    assert FusedParams(p1=float("inf"), spectral_size=0).p1 == float("inf")
    assert GenderPriors(confidence=0.0).confidence == 0.0
