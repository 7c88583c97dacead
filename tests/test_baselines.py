import cv2
import numpy as np
import pytest

from masksegx.eval import baselines
from masksegx.eval.baselines import SEGMENTATION_METHODS
from masksegx.eval.compensations import COMPENSATION_METHODS
from masksegx.spectral import SpectralParams
from spies import record_compensations
from synthetic import iou, masked_face

#: The easy blue case must be found by the colour- and prior-based baselines.
MIN_IOU = {
    "threshold": 0.9,
    "fcm": 0.9,
    "graph_cut": 0.9,
    "level_set": 0.9,
    "edge": 0.5,
    "spectral": 0.5,
}


@pytest.fixture
def compensations(monkeypatch):
    return record_compensations(monkeypatch)


@pytest.fixture(scope="module")
def face():
    return masked_face(120, 100, seed=3)


@pytest.fixture(scope="module")
def lower_region():
    region = np.zeros((120, 100), bool)
    region[40:, 10:90] = True
    return region


@pytest.mark.parametrize("name", sorted(SEGMENTATION_METHODS))
def test_method_finds_the_blue_mask(name, face):
    image, truth = face
    mask = SEGMENTATION_METHODS[name](image, None)
    assert mask.shape == truth.shape and mask.dtype == bool
    assert iou(mask, truth) > MIN_IOU[name]


@pytest.mark.parametrize("name", sorted(SEGMENTATION_METHODS))
def test_method_stays_inside_region(name, face, lower_region):
    image, truth = face
    mask = SEGMENTATION_METHODS[name](image, lower_region)
    assert mask.shape == truth.shape and mask.dtype == bool
    assert not (mask & ~lower_region).any()
    assert iou(mask, truth & lower_region) > MIN_IOU[name] - 0.15


def test_spectral_passes_the_compensation_through(compensations, face):
    image, _ = face
    baselines.spectral(image)
    baselines.spectral(image, compensation=COMPENSATION_METHODS["inhibition"])
    assert compensations == [SpectralParams().compensation, COMPENSATION_METHODS["inhibition"]]


@pytest.mark.parametrize("name", sorted(SEGMENTATION_METHODS))
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (1, 40), (9, 9)])
@pytest.mark.parametrize("value", [0, 128])
def test_tiny_and_constant_images(name, shape, value):
    image = np.full(shape + (3,), value, np.uint8)
    method = SEGMENTATION_METHODS[name]
    mask = method(image, None)
    assert mask.shape == shape and mask.dtype == bool
    assert method(image, np.ones(shape, bool)).shape == shape
    assert not method(image, np.zeros(shape, bool)).any()


@pytest.mark.parametrize("name", sorted(SEGMENTATION_METHODS))
def test_methods_are_deterministic(name, face):
    image, _ = face
    first = SEGMENTATION_METHODS[name](image, None)
    cv2.setRNGSeed(12345)  # graph cut must not depend on OpenCV's global random state
    np.testing.assert_array_equal(SEGMENTATION_METHODS[name](image, None), first)


@pytest.mark.parametrize("name", sorted(SEGMENTATION_METHODS))
def test_bad_arguments(name, face):
    image, _ = face
    method = SEGMENTATION_METHODS[name]
    with pytest.raises(TypeError, match="image"):
        method(image.astype(np.float32), None)
    with pytest.raises(ValueError, match="region"):
        method(image, np.ones((5, 5), bool))


def test_level_set_with_zero_iterations_is_the_seed_box(face):
    image, _ = face
    mask = baselines.level_set(image, iterations=0)
    ys, xs = np.nonzero(mask)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (60, 114, 15, 85)


# --- compensation methods (Table 3) ------------------------------------------------------

CALLABLE_COMPENSATIONS = sorted(name for name, f in COMPENSATION_METHODS.items() if callable(f))
GLOBAL_COMPENSATIONS = {"gray_world"}


def test_strings_select_the_pipelines_own_choices():
    assert COMPENSATION_METHODS["combined"] == "combined" and COMPENSATION_METHODS["none"] == "none"
    assert len(CALLABLE_COMPENSATIONS) == len(COMPENSATION_METHODS) - 2


@pytest.mark.parametrize("name", CALLABLE_COMPENSATIONS)
def test_compensation_keeps_shape_and_dtype(name, face, lower_region):
    image, _ = face
    before = image.copy()
    for region in (None, lower_region):
        out = COMPENSATION_METHODS[name](image, region)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert out is not image
    np.testing.assert_array_equal(image, before)  # input untouched


@pytest.mark.parametrize("name", sorted(set(CALLABLE_COMPENSATIONS) - GLOBAL_COMPENSATIONS))
def test_local_compensation_changes_only_the_region(name, face, lower_region):
    image, _ = face
    out = COMPENSATION_METHODS[name](image, lower_region)
    np.testing.assert_array_equal(out[~lower_region], image[~lower_region])


@pytest.mark.parametrize("name", CALLABLE_COMPENSATIONS)
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (5, 1), (33, 17)])
def test_compensation_on_tiny_and_constant_images(name, shape):
    image = np.full(shape + (3,), 90, np.uint8)
    for region in (None, np.ones(shape, bool), np.eye(*shape, dtype=bool)):
        assert COMPENSATION_METHODS[name](image, region).shape == image.shape


@pytest.mark.parametrize("name", CALLABLE_COMPENSATIONS)
def test_compensation_bad_arguments(name, face):
    image, _ = face
    with pytest.raises(TypeError, match="image"):
        COMPENSATION_METHODS[name](image.astype(np.float32), None)
    with pytest.raises(ValueError, match="region"):
        COMPENSATION_METHODS[name](image, np.ones((4, 4), bool))


def test_inhibition_scales_blue_by_0_8(face, lower_region):
    image, _ = face
    out = COMPENSATION_METHODS["inhibition"](image, lower_region)
    np.testing.assert_array_equal(
        out[..., 0][lower_region], np.rint(image[..., 0][lower_region] * 0.8)
    )
    np.testing.assert_array_equal(out[..., 1:], image[..., 1:])


def test_gray_world_equalises_channel_means(face):
    image, _ = face
    means = COMPENSATION_METHODS["gray_world"](image).reshape(-1, 3).mean(axis=0)
    assert means.max() - means.min() < 1.0
    assert abs(means.mean() - image.mean()) < 1.0


def test_color_balance_stretches_region_percentiles(face, lower_region):
    image, _ = face
    out = COMPENSATION_METHODS["color_balance"](image, lower_region)[lower_region]
    for channel in range(3):
        low, high = np.percentile(out[:, channel], [0.5, 99.5])
        assert low == 0 and high == 255


def test_histogram_equalization_spreads_region_luma(face, lower_region):
    image, _ = face
    out = COMPENSATION_METHODS["histogram_equalization"](image, lower_region)
    luma = cv2.cvtColor(out, cv2.COLOR_BGR2YCrCb)[..., 0][lower_region]
    assert luma.min() < 40 and luma.max() > 215


def test_inverse_projection_pulls_skin_like_pixels_out_of_the_mask_colour(face):
    image, truth = face
    region = np.zeros(truth.shape, bool)
    region[50:, :] = True  # the mask and some skin and background below/beside it
    out = COMPENSATION_METHODS["inverse_projection"](image, region)
    skin_in_region = region & ~truth
    change = np.abs(out.astype(int) - image)
    # Skin/background inside the region look like the outside model and move;
    # the blue mask does not.
    assert change[skin_in_region].mean() > 5 * change[truth].mean()
    unchanged = COMPENSATION_METHODS["inverse_projection"](image, None)
    np.testing.assert_array_equal(unchanged, image)


@pytest.mark.parametrize("name", CALLABLE_COMPENSATIONS)
def test_compensation_plugs_into_spectral(name, compensations, face):
    image, truth = face
    mask = baselines.spectral(image, compensation=COMPENSATION_METHODS[name])
    assert mask.shape == truth.shape and compensations == [COMPENSATION_METHODS[name]]
