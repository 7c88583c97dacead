import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from masksegx import compensate
from reference import (
    blue_suppression_ref,
    compensate_region_ref,
    gray_world_minkowski_ref,
    minkowski_illuminant_ref,
)


@st.composite
def images_and_regions(draw, max_side=24):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    image = draw(arrays(np.uint8, (h, w, 3)))
    region = draw(arrays(np.bool_, (h, w)))
    return image, region


exponents = st.one_of(st.sampled_from([1.0, 2.0, 6.0, np.inf]), st.floats(1.0, 40.0))


def assert_images_close(got, want):
    # Gains come from a histogram, the reference from per-pixel powers: they agree to ~1e-13
    # relative, which can move a product lying exactly on a .5 tie by one level.
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.abs(got.astype(int) - want).max(initial=0) <= 1


def test_blue_suppression_known_values():
    image = np.array([[[100, 50, 200], [255, 1, 2]], [[5, 6, 7], [3, 3, 3]]], np.uint8)
    region = np.array([[True, False], [True, True]])
    out = compensate.blue_suppression(image, region, 0.5)
    # 5 * 0.5 = 2.5 and 3 * 0.5 = 1.5 round to the even neighbours 2 and 2.
    np.testing.assert_array_equal(out[..., 0], [[50, 255], [2, 2]])
    np.testing.assert_array_equal(out[..., 1:], image[..., 1:])
    rgb = compensate.blue_suppression(image, region, 0.5, order="rgb")
    np.testing.assert_array_equal(rgb[..., 2], [[100, 2], [4, 2]])


@settings(max_examples=60, deadline=None)
@given(images_and_regions(), st.floats(0.0, 3.0), st.sampled_from(["bgr", "rgb"]))
def test_blue_suppression_matches_reference(data, mu, order):
    image, region = data
    got = compensate.blue_suppression(image, region, mu, order=order)
    np.testing.assert_array_equal(got, blue_suppression_ref(image, region, mu, order))


@settings(max_examples=80, deadline=None)
@given(images_and_regions(), exponents, st.floats(0.1, 10.0))
def test_minkowski_illuminant_matches_reference(data, t, scale):
    image, region = data
    region = region.copy()
    region.flat[0] = True
    got = compensate.minkowski_illuminant(image, region, t, scale=scale)
    assert got.dtype == np.float64 and got.shape == (3,)
    np.testing.assert_allclose(got, minkowski_illuminant_ref(image, region, t, scale), rtol=1e-12)


def test_minkowski_limits_are_gray_world_and_max_rgb(rng):
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    region = rng.random((30, 40)) < 0.4
    values = image[region].astype(np.float64)
    mean = compensate.minkowski_illuminant(image, region, 1.0)
    np.testing.assert_allclose(mean, values.mean(0), rtol=1e-13)
    np.testing.assert_array_equal(compensate.minkowski_illuminant(image, region, np.inf), values.max(0))
    # Large exponents approach the maximum from below without overflowing.
    big = compensate.minkowski_illuminant(image, region, 2000.0)
    assert np.all(big <= values.max(0)) and np.allclose(big, values.max(0), rtol=1e-2)


def test_minkowski_of_black_region_is_zero():
    image = np.zeros((3, 3, 3), np.uint8)
    np.testing.assert_array_equal(compensate.minkowski_illuminant(image, np.ones((3, 3), bool)), 0)


def test_gray_world_t1_is_ratio_of_means(rng):
    image = rng.integers(20, 200, (16, 16, 3), dtype=np.uint8)
    region = np.zeros((16, 16), bool)
    region[8:] = True
    gain = image[~region].mean(0) / image[region].mean(0)
    want = image.copy()
    want[region] = np.clip(np.rint(image[region] * gain), 0, 255)
    assert_images_close(compensate.gray_world_minkowski(image, region, 1.0), want)


@settings(max_examples=80, deadline=None)
@given(images_and_regions(), exponents)
def test_gray_world_matches_reference(data, t):
    image, region = data
    want, *_ = gray_world_minkowski_ref(image, region, t)
    assert_images_close(compensate.gray_world_minkowski(image, region, t), want)


@settings(max_examples=80, deadline=None)
@given(images_and_regions(), st.floats(0.0, 2.0), exponents, st.sampled_from(["bgr", "rgb"]))
def test_compensate_region_matches_reference(data, mu, t, order):
    image, region = data
    got = compensate.compensate_region(image, region, mu=mu, t=t, order=order)
    image_ref, gain, inside, outside = compensate_region_ref(image, region, mu, t, order)
    assert_images_close(got.image, image_ref)
    np.testing.assert_allclose(got.gain, gain, rtol=1e-12)
    np.testing.assert_allclose(got.illuminant_region, inside, rtol=1e-12)
    np.testing.assert_allclose(got.illuminant_background, outside, rtol=1e-12)
    # The fused kernel is exactly the two published steps in sequence.
    two_steps = compensate.gray_world_minkowski(
        compensate.blue_suppression(image, region, mu, order=order), region, t
    )
    np.testing.assert_array_equal(got.image, two_steps)


@pytest.mark.parametrize("strength", [0.0, -1.0, 0.5])
def test_strength_is_an_exponent_on_the_eq21_gains(rng, strength):
    image = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    region = rng.random((9, 11)) < 0.4
    paper = compensate.compensate_region(image, region, mu=0.7)
    got = compensate.compensate_region(image, region, mu=0.7, strength=strength)
    np.testing.assert_allclose(got.gain, paper.gain**strength, rtol=1e-12)
    suppressed = compensate.blue_suppression(image, region, 0.7).astype(np.float64)
    want = suppressed.copy()
    want[region] = np.clip(np.rint(suppressed[region] * got.gain), 0, 255)
    assert_images_close(got.image, want.astype(np.uint8))


def test_strength_must_be_finite():
    with pytest.raises(ValueError, match="strength"):
        compensate.compensate_region(GOOD_IMAGE, GOOD_REGION, strength=np.inf)


@pytest.mark.parametrize("fill", [False, True])
def test_one_sided_region_leaves_image_unchanged(rng, fill):
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    region = np.full((5, 7), fill)
    np.testing.assert_array_equal(compensate.gray_world_minkowski(image, region), image)
    result = compensate.compensate_region(image, region, mu=1.0)
    np.testing.assert_array_equal(result.image, image)
    np.testing.assert_array_equal(result.gain, 1.0)
    empty_side = result.illuminant_background if fill else result.illuminant_region
    assert np.isnan(empty_side).all()


def test_full_region_is_only_suppressed(rng):
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    region = np.ones((5, 7), bool)
    result = compensate.compensate_region(image, region, mu=0.5, order="rgb")
    np.testing.assert_array_equal(result.image, compensate.blue_suppression(image, region, 0.5, order="rgb"))
    np.testing.assert_array_equal(result.gain, 1.0)


def test_black_region_channel_keeps_gain_one():
    image = np.full((4, 4, 3), 90, np.uint8)
    image[2:, :, 1] = 0
    region = np.zeros((4, 4), bool)
    region[2:] = True
    result = compensate.compensate_region(image, region, mu=1.0)
    np.testing.assert_allclose(result.gain, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(result.image, image)


def test_constant_background_pulls_region_to_its_colour():
    image = np.zeros((6, 6, 3), np.uint8)
    image[:3] = (40, 80, 120)
    image[3:] = (80, 40, 60)
    region = np.zeros((6, 6), bool)
    region[3:] = True
    result = compensate.compensate_region(image, region, mu=1.0)
    np.testing.assert_allclose(result.gain, [0.5, 2.0, 2.0])
    np.testing.assert_array_equal(result.image, np.broadcast_to(np.uint8([40, 80, 120]), (6, 6, 3)))


def test_non_contiguous_and_integer_masks_are_accepted(rng):
    image = rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)
    region = rng.integers(0, 2, (12, 18), dtype=np.uint8)
    view = image[:, ::2]
    got = compensate.compensate_region(view, region[:, ::2])
    want = compensate.compensate_region(np.ascontiguousarray(view), region[:, ::2].astype(bool))
    np.testing.assert_array_equal(got.image, want.image)


GOOD_IMAGE = np.zeros((4, 5, 3), np.uint8)
GOOD_REGION = np.ones((4, 5), bool)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: compensate.blue_suppression(GOOD_IMAGE.astype(np.float32), GOOD_REGION), TypeError, "uint8"),
        (lambda: compensate.blue_suppression(GOOD_IMAGE, GOOD_REGION[:3]), ValueError, "region"),
        (lambda: compensate.blue_suppression(GOOD_IMAGE, GOOD_REGION.astype(np.float32)),
         TypeError, "region"),
        (lambda: compensate.blue_suppression(GOOD_IMAGE, GOOD_REGION, np.nan), ValueError, "mu"),
        (lambda: compensate.blue_suppression(GOOD_IMAGE, GOOD_REGION, -0.1), ValueError, "mu"),
        (lambda: compensate.blue_suppression(GOOD_IMAGE, GOOD_REGION, np.inf), ValueError, "mu"),
        (lambda: compensate.compensate_region(GOOD_IMAGE, GOOD_REGION, mu=np.nan), ValueError, "mu"),
        (lambda: compensate.compensate_region(GOOD_IMAGE, GOOD_REGION, t=0.5), ValueError, "t:"),
        (lambda: compensate.gray_world_minkowski(GOOD_IMAGE, GOOD_REGION, np.nan), ValueError, "t:"),
        (lambda: compensate.minkowski_illuminant(GOOD_IMAGE, GOOD_REGION, 0.99), ValueError, "t:"),
        (lambda: compensate.minkowski_illuminant(GOOD_IMAGE, GOOD_REGION, scale=0.0), ValueError, "scale"),
        (lambda: compensate.minkowski_illuminant(GOOD_IMAGE, ~GOOD_REGION), ValueError, "region: no pixels"),
        (lambda: compensate.compensate_region(GOOD_IMAGE[..., :2], GOOD_REGION), ValueError, "image"),
        (lambda: compensate.compensate_region(GOOD_IMAGE, GOOD_REGION, order="hsv"), ValueError, "order"),
        (lambda: compensate.gray_world_minkowski(GOOD_IMAGE, GOOD_REGION, order="lab"), ValueError, "order"),
        (lambda: compensate.gray_world_minkowski(GOOD_IMAGE.tolist(), GOOD_REGION), TypeError, "image"),
    ],
)
def test_bad_inputs_raise(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_core_checks_its_own_arguments():
    from masksegx import _core

    with pytest.raises(TypeError, match="region: expected dtype bool"):
        _core.gray_world_minkowski(GOOD_IMAGE, GOOD_REGION.astype(np.uint8))
    with pytest.raises(ValueError, match=r"region: expected shape \(4, 5\)"):
        _core.compensate_region(GOOD_IMAGE, GOOD_REGION.T.copy())
    with pytest.raises(ValueError, match="contiguous"):
        _core.blue_suppression(GOOD_IMAGE, np.ones((4, 10), bool)[:, ::2])
