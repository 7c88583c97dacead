import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masksegx import align
from masksegx.align import (
    CANONICAL_5PTS,
    align_face,
    canonical_points,
    invert_affine,
    similarity_transform,
    transform_points,
)


def _similarity(angle, scale, shift):
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[scale * cos, -scale * sin, shift[0]], [scale * sin, scale * cos, shift[1]]])


@settings(max_examples=60, deadline=None)
@given(
    angle=st.floats(-np.pi, np.pi),
    scale=st.floats(0.05, 20.0),
    shift=st.tuples(st.floats(-500, 500), st.floats(-500, 500)),
    seed=st.integers(0, 2**32 - 1),
)
def test_similarity_transform_recovers_a_known_similarity(angle, scale, shift, seed):
    src = np.random.default_rng(seed).uniform(0, 200, (5, 2))
    truth = _similarity(angle, scale, shift)
    dst = transform_points(src, truth)
    np.testing.assert_allclose(similarity_transform(src, dst), truth, atol=1e-7 * (1 + scale))


def test_similarity_transform_never_reflects(rng):
    src = rng.uniform(0, 100, (5, 2))
    mirrored = src * np.array([-1.0, 1.0])
    linear = similarity_transform(src, mirrored)[:, :2]
    assert np.linalg.det(linear) > 0
    # A rotation times a scale: orthogonal columns of equal length.
    assert abs(linear[:, 0] @ linear[:, 1]) < 1e-9
    np.testing.assert_allclose(np.linalg.norm(linear[:, 0]), np.linalg.norm(linear[:, 1]))


def test_similarity_transform_least_squares_beats_perturbations(rng):
    src = rng.uniform(0, 100, (5, 2))
    dst = transform_points(src, _similarity(0.3, 1.5, (10, -4))) + rng.normal(0, 2, (5, 2))
    best = similarity_transform(src, dst)

    def error(matrix):
        return ((transform_points(src, matrix) - dst) ** 2).sum()

    for _ in range(50):
        angle, scale = rng.normal(0, 0.01), np.exp(rng.normal(0, 0.01))
        nudged = _similarity(angle, scale, rng.normal(0, 0.1, 2))
        composed = nudged[:, :2] @ best
        composed[:, 2] += nudged[:, 2]
        assert error(best) <= error(composed) + 1e-9


def test_align_face_puts_landmarks_on_canonical_points(rng):
    image = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
    landmarks = transform_points(CANONICAL_5PTS, _similarity(0.4, 1.7, (40, 30)))
    for size in (16, 112, 224):
        crop, matrix = align_face(image, landmarks, size=size)
        assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
        mapped = transform_points(landmarks, matrix)
        np.testing.assert_allclose(mapped, canonical_points(size), atol=1e-9)
        back = transform_points(canonical_points(size), invert_affine(matrix))
        np.testing.assert_allclose(back, landmarks, atol=1e-9)


def test_align_face_samples_the_image_at_the_mapped_points():
    # A linear ramp is reproduced exactly by bilinear sampling, so any crop pixel can be checked.
    ys, xs = np.mgrid[0:200, 0:200]
    image = np.repeat((xs // 2 + ys // 4).astype(np.uint8)[:, :, None], 3, axis=2)
    landmarks = CANONICAL_5PTS * 1.3 + 20
    crop, matrix = align_face(image, landmarks, size=64)
    crop_points = np.array([[10.0, 12.0], [40.0, 50.0]])
    for (cx, cy), (x, y) in zip(crop_points, transform_points(crop_points, invert_affine(matrix))):
        expected = image[int(round(y)), int(round(x)), 0]
        assert abs(int(crop[int(cy), int(cx), 0]) - int(expected)) <= 1


def test_canonical_points_scale():
    np.testing.assert_allclose(canonical_points(224), CANONICAL_5PTS * 2)
    np.testing.assert_array_equal(canonical_points(), CANONICAL_5PTS)


def test_invert_affine_round_trip(rng):
    matrix = np.hstack([rng.normal(size=(2, 2)) + 2 * np.eye(2), rng.normal(size=(2, 1))])
    identity = np.vstack([invert_affine(matrix), [0, 0, 1]]) @ np.vstack([matrix, [0, 0, 1]])
    np.testing.assert_allclose(identity, np.eye(3), atol=1e-12)


def test_landmark_list_accepted():
    image = np.zeros((120, 120, 3), np.uint8)
    crop, _ = align_face(image, CANONICAL_5PTS.tolist())
    assert crop.shape == (112, 112, 3)


@pytest.mark.parametrize(
    "landmarks, error",
    [
        (np.zeros((4, 2)), ValueError),
        (np.zeros((5, 3)), ValueError),
        (np.zeros(10), ValueError),
        (np.full((5, 2), np.nan), ValueError),
        (np.array([[np.inf, 0]] * 5), ValueError),
        (np.full((5, 2), "a"), TypeError),
        ("landmarks", TypeError),
        (np.full((5, 2), 7.0), ValueError),  # all points coincide
    ],
)
def test_align_face_rejects_bad_landmarks(landmarks, error):
    with pytest.raises(error, match="landmarks|src"):
        align_face(np.zeros((50, 50, 3), np.uint8), landmarks)


@pytest.mark.parametrize(
    "size, error", [(15, ValueError), (0, ValueError), (112.0, TypeError), (True, TypeError)]
)
def test_align_face_rejects_bad_size(size, error):
    with pytest.raises(error, match="size"):
        align_face(np.zeros((50, 50, 3), np.uint8), CANONICAL_5PTS, size=size)


def test_bad_image_and_matrix():
    with pytest.raises(TypeError, match="image"):
        align_face(np.zeros((50, 50, 3), np.float32), CANONICAL_5PTS)
    with pytest.raises(ValueError, match="image"):
        align_face(np.zeros((50, 50), np.uint8), CANONICAL_5PTS)
    with pytest.raises(ValueError, match="matrix"):
        invert_affine(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="matrix"):
        transform_points(CANONICAL_5PTS, np.eye(3))
    with pytest.raises(ValueError, match="shapes differ"):
        similarity_transform(np.zeros((5, 2)), np.zeros((4, 2)))


def test_module_exported():
    import masksegx

    assert masksegx.align is align
