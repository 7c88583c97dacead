import dataclasses

import numpy as np
import pytest

import masksegx
from masksegx import SpectralParams, segment_spectral
from synthetic import iou, masked_face


@pytest.fixture(scope="module")
def face():
    return masked_face(160, 128, seed=5)


def test_finds_the_blue_mask_on_a_face_crop(face):
    image, truth = face
    result = segment_spectral(image)
    assert result.mask.shape == truth.shape and result.mask.dtype == bool
    assert iou(result.mask, truth) > 0.85


def test_intermediate_maps_explain_the_mask(face):
    image, _ = face
    r = segment_spectral(image)
    h, w = image.shape[:2]
    assert r.box == (0, 0, w, h)
    for name in ("nbri", "nmri", "membership"):
        assert getattr(r, name).shape == (h, w) and getattr(r, name).dtype == np.float32
    assert r.preprocessed.shape == r.compensated.shape == image.shape
    assert r.cluster_centers.shape == (SpectralParams().clusters, 3)
    assert r.mask_clusters.dtype == bool and r.mask_clusters.any() and not r.mask_clusters.all()
    top = round(SpectralParams().top * h)
    assert not r.candidates[:top].any()
    threshold = SpectralParams().membership_threshold
    np.testing.assert_array_equal(r.candidates[top:], r.membership[top:] > threshold)
    assert r.kept.shape == (r.components.count,)
    kept = r.components.select(r.kept)
    assert not (kept & ~r.mask).any(), "every kept component is in the mask"
    assert not (r.mask & ~r.candidates & ~masksegx.regions.fill_holes(kept)).any()


def test_nothing_above_top_is_mask(face):
    image, _ = face
    params = dataclasses.replace(SpectralParams(), top=0.6)
    r = segment_spectral(image, params=params)
    assert not r.mask[: int(0.6 * image.shape[0]) - 1].any()


def test_box_region_places_the_crop_in_image_coordinates(face):
    image, truth = face
    canvas = np.full((300, 260, 3), 30, np.uint8)
    canvas[100:260, 90:218] = image
    r = segment_spectral(canvas, region=(90, 100, 218, 260))
    assert r.box == (90, 100, 218, 260)
    assert not r.mask[:100].any() and not r.mask[:, :90].any()
    assert iou(r.mask[100:260, 90:218], truth) > 0.85


def test_bool_region_limits_the_result(face):
    image, _ = face
    limit = np.zeros(image.shape[:2], bool)
    limit[90:, 20:70] = True
    r = segment_spectral(image, region=limit)
    assert not (r.mask & ~limit).any()


def test_deterministic(face):
    image, _ = face
    a, b = segment_spectral(image), segment_spectral(image)
    np.testing.assert_array_equal(a.mask, b.mask)


def test_no_compensation_keeps_the_crop(face):
    image, _ = face
    r = segment_spectral(image, params=dataclasses.replace(SpectralParams(), compensation="none"))
    np.testing.assert_array_equal(r.compensated, r.preprocessed)


def test_combined_compensation_changes_only_the_candidate_region(face):
    image, _ = face
    params = dataclasses.replace(SpectralParams(), compensation="combined", blue_mu=0.8)
    r = segment_spectral(image, params=params)
    changed = (r.compensated != r.preprocessed).any(-1)
    assert changed.any()
    assert not (changed & ~r.initial_candidates).any()


def test_callable_compensation_receives_the_candidates(face):
    image, _ = face
    seen = {}

    def brighten(crop, region):
        seen["region"] = region.copy()
        out = crop.copy()
        out[region] = 255 - out[region]
        return out

    params = dataclasses.replace(SpectralParams(), compensation=brighten)
    r = segment_spectral(image, params=params)
    np.testing.assert_array_equal(seen["region"], r.initial_candidates)
    assert not np.array_equal(r.compensated, r.preprocessed)


def test_preprocessing_options_run(face):
    image, truth = face
    params = dataclasses.replace(SpectralParams(), bilateral_sigma=30.0, sharpen=0.5)
    r = segment_spectral(image, params=params)
    assert not np.array_equal(r.preprocessed, image)
    assert iou(r.mask, truth) > 0.7


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"clusters": 1}, "clusters"),
        ({"fuzzifier": 1.0}, "fuzzifier"),
        ({"top": 1.0}, "top"),
        ({"variance_window": 4}, "variance_window"),
        ({"connectivity": 6}, "connectivity"),
        ({"skin_probe": (0.5, 0.4, 0.2, 0.8)}, "skin_probe"),
        ({"compensation": "retinex"}, "compensation"),
    ],
)
def test_bad_params_raise(changes, words):
    with pytest.raises(ValueError, match=words):
        dataclasses.replace(SpectralParams(), **changes)


@pytest.mark.parametrize(
    "image, region, exc, words",
    [
        (np.zeros((40, 40, 3), np.float32), None, TypeError, "image"),
        (np.zeros((40, 40), np.uint8), None, ValueError, "image"),
        (np.zeros((40, 40, 3), np.uint8), (100, 100, 200, 200), ValueError, "region"),
        (np.zeros((40, 40, 3), np.uint8), np.zeros((40, 40), bool), ValueError, "region"),
        (np.zeros((40, 40, 3), np.uint8), np.zeros((30, 40), bool), ValueError, "region"),
        (np.zeros((40, 40, 3), np.uint8), "lower half", TypeError, "region"),
    ],
)
def test_bad_inputs_raise(image, region, exc, words):
    with pytest.raises(exc, match=words):
        segment_spectral(image, region=region)


def test_tiny_and_flat_images_do_not_crash():
    for image in (np.zeros((4, 4, 3), np.uint8), np.full((30, 20, 3), 200, np.uint8)):
        r = segment_spectral(image)
        assert r.mask.shape == image.shape[:2]
