import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from masksegx import color
from reference import spectral_maps_ref


def hue_distance(a, b):
    d = np.abs(a - b)
    return np.minimum(d, 1.0 - d)


def assert_maps_match(image, order):
    got = color.spectral_maps(image, order=order)
    hue, sat, inten, nbri, nmri = spectral_maps_ref(image, order)
    np.testing.assert_allclose(got.saturation, sat, atol=1e-6)
    np.testing.assert_allclose(got.intensity, inten, atol=1e-6)
    np.testing.assert_allclose(got.nbri, nbri, atol=1e-6)
    np.testing.assert_allclose(got.nmri, nmri, atol=1e-6)
    # acos near +-1 loses precision in the float64 reference itself; 1e-5 of a turn = 0.004 deg.
    assert hue_distance(got.hue, hue).max(initial=0) < 1e-5


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3))),
    st.sampled_from(["bgr", "rgb"]),
)
def test_spectral_maps_match_numpy_reference(image, order):
    assert_maps_match(image, order)


def test_every_grey_and_primary_colour():
    levels = np.array([0, 1, 127, 128, 254, 255], np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(1, -1, 3)
    assert_maps_match(np.ascontiguousarray(grid), "bgr")


def test_known_values():
    # BGR pixels: black, white, pure red, pure blue
    image = np.array([[[0, 0, 0], [255, 255, 255], [0, 0, 255], [255, 0, 0]]], np.uint8)
    m = color.spectral_maps(image)
    np.testing.assert_allclose(m.nbri[0], [0, 0, -1, 1])
    np.testing.assert_allclose(m.intensity[0], [0, 1, 1 / 3, 1 / 3], atol=1e-6)
    np.testing.assert_allclose(m.saturation[0], [0, 0, 1, 1], atol=1e-6)
    np.testing.assert_allclose(m.hue[0], [0, 0, 0, 2 / 3], atol=1e-5)
    np.testing.assert_allclose(m.nmri[0], [0, -1, 0.5, 0.5], atol=1e-6)


def test_rgb_to_hsi_interleaves_the_same_maps(rng):
    image = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    hsi = color.rgb_to_hsi(image, order="rgb")
    m = color.spectral_maps(image, order="rgb")
    assert hsi.shape == (17, 23, 3) and hsi.dtype == np.float32
    np.testing.assert_array_equal(hsi[..., 0], m.hue)
    np.testing.assert_array_equal(hsi[..., 1], m.saturation)
    np.testing.assert_array_equal(hsi[..., 2], m.intensity)


def test_order_names_the_channel_layout(rng):
    image = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    flipped = image[..., ::-1]
    np.testing.assert_array_equal(color.nbri(image), color.nbri(flipped, order="rgb"))
    np.testing.assert_allclose(color.nbri(image), -color.nbri(flipped, order="bgr"))


def test_non_contiguous_input_is_accepted(rng):
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    view = image[::2, ::3]
    np.testing.assert_array_equal(color.nbri(view), color.nbri(np.ascontiguousarray(view)))


@pytest.mark.parametrize(
    "bad, exc, words",
    [
        (np.zeros((4, 4, 3), np.float32), TypeError, "uint8"),
        (np.zeros((4, 4), np.uint8), ValueError, "(H, W, 3)"),
        (np.zeros((4, 4, 4), np.uint8), ValueError, "(H, W, 3)"),
        (np.zeros((0, 4, 3), np.uint8), ValueError, "empty"),
        ([[1, 2, 3]], TypeError, "numpy.ndarray"),
    ],
)
def test_bad_images_raise(bad, exc, words):
    with pytest.raises(exc, match="image") as info:
        color.spectral_maps(bad)
    assert words in str(info.value)


def test_bad_order_raises():
    with pytest.raises(ValueError, match="order"):
        color.nbri(np.zeros((2, 2, 3), np.uint8), order="hsv")


def test_core_rejects_what_the_wrapper_would_convert():
    from masksegx import _core

    with pytest.raises(ValueError, match="contiguous"):
        _core.spectral_maps(np.zeros((4, 6, 3), np.uint8)[:, ::2])
    with pytest.raises(TypeError, match="dtype"):
        _core.rgb_to_hsi(np.zeros((4, 4, 3), np.int16))


def test_core_accepts_equal_dtype_objects(rng):
    from masksegx import _core

    image = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    # frombuffer builds its own dtype object, equal to but not the same as numpy's uint8.
    view = np.frombuffer(image.tobytes(), dtype=np.dtype("|u1")).reshape(4, 5, 3)
    np.testing.assert_array_equal(_core.spectral_maps(view)[3], color.nbri(image))
