"""Face alignment from 5 landmarks: a similarity transform onto a canonical crop.

Landmark order everywhere in masksegx: left eye centre, right eye centre, nose tip, left mouth
corner, right mouth corner, where "left" means the image left (as in CUHK / MTFL annotations and
MTCNN output). Points are ``(x, y)`` in pixels, x to the right, y down, pixel centres at integer
coordinates (the convention of ``cv2.warpAffine``).

The canonical crop is the ArcFace / InsightFace 112x112 template (:data:`CANONICAL_5PTS`), used by
most face-recognition and face-attribute pipelines; :func:`canonical_points` scales it to any size.
Training and inference share :func:`align_face`, so a model always sees crops made the same way.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._validation import as_image, as_points, check_int, check_number

#: Landmark count and order: left eye, right eye, nose tip, left mouth corner, right mouth corner.
N_LANDMARKS = 5

#: Canonical landmark positions (x, y) in a 112x112 crop: the ArcFace / InsightFace template.
#: Eyes at y ~ 51.6 (46 % of the height), mouth corners at y ~ 92.3 (82 %), nose tip centred.
CANONICAL_5PTS = np.array(
    [
        [38.2946, 51.6963],  # left eye
        [73.5318, 51.5014],  # right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=np.float64,
)
CANONICAL_SIZE = 112

#: Smallest crop side :func:`align_face` produces; below it the landmarks are a few pixels apart.
MIN_CROP_SIZE = 16
#: Largest crop side :func:`align_face` produces (a 4096x4096x3 crop is 48 MiB; a larger
#: ``size`` is more likely a slip than a face).
MAX_CROP_SIZE = 4096


def canonical_points(size: int = CANONICAL_SIZE, padding: float = 0.0) -> np.ndarray:
    """:data:`CANONICAL_5PTS` scaled uniformly to a ``size`` x ``size`` crop (float64 [5, 2]).

    ``padding`` >= 0 widens the crop around the template as dlib's face chips do: the 112x112
    template square becomes the centre ``1 / (1 + 2 padding)`` of the crop, i.e. a point ``p``
    (in template units 0..1) lands at ``(p + padding) / (1 + 2 padding) * size``. 0 gives the
    ArcFace crop (eyes at 46 %, mouth at 82 % of the height, chin cut off); 0.15 keeps the chin
    and some hair.
    """
    size = _check_size(size)
    padding = _check_padding(padding)
    if padding == 0.0:
        return CANONICAL_5PTS * (size / CANONICAL_SIZE)
    return (CANONICAL_5PTS / CANONICAL_SIZE + padding) / (1.0 + 2.0 * padding) * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) src -> dst.

    Umeyama's closed form (IEEE TPAMI 1991): minimises ``sum |s R src_i + t - dst_i|^2``.

    Parameters
    ----------
    src, dst : array [N, 2], N >= 2
        Corresponding points (x, y); ``src`` must not be all one point.

    Returns
    -------
    float64 [2, 3] matrix ``[[s*R | t]]`` that maps a column ``(x, y, 1)`` of src to dst.
    """
    src = as_points(src, "src")
    dst = as_points(dst, "dst")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst: shapes differ ({src.shape} vs {dst.shape})")
    if src.shape[0] < 2:
        raise ValueError(f"src: need at least 2 points, got {src.shape[0]}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_centred, dst_centred = src - src_mean, dst - dst_mean
    src_variance = (src_centred**2).sum() / len(src)
    if src_variance <= 1e-12 * max(1.0, float(np.abs(src).max()) ** 2):
        raise ValueError("src: all points coincide, the transform is undefined")
    covariance = dst_centred.T @ src_centred / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    # Flip the weakest axis when the best orthogonal fit is a reflection.
    signs = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(signs) @ vt
    scale = float(singular @ signs) / src_variance
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to points [N, 2]; returns float64 [N, 2]."""
    points = as_points(points, "points")
    matrix = _as_affine(matrix)
    moved: np.ndarray = points @ matrix[:, :2].T + matrix[:, 2]
    return moved


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine ``matrix`` (float64 2x3); ValueError if it is singular."""
    matrix = _as_affine(matrix)
    linear = matrix[:, :2]
    if abs(np.linalg.det(linear)) < 1e-12 * max(1.0, float(np.abs(linear).max()) ** 2):
        raise ValueError("matrix: singular, it has no inverse")
    inverse_linear = np.linalg.inv(linear)
    return np.hstack([inverse_linear, -(inverse_linear @ matrix[:, 2])[:, None]])


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int = CANONICAL_SIZE, padding: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``image`` so that ``landmarks`` land on :func:`canonical_points` ``(size, padding)``.

    Parameters
    ----------
    image : uint8 [H, W, 3]
        Colour image (any channel order; it is kept).
    landmarks : [5, 2]
        Left eye, right eye, nose tip, left and right mouth corner (x, y) in image pixels.
    size : int in [16, 4096] (:data:`MIN_CROP_SIZE`, :data:`MAX_CROP_SIZE`)
        Side of the square output crop in pixels.
    padding : float in [0, 2]
        Margin around the canonical template (see :func:`canonical_points`).

    Returns
    -------
    crop : uint8 [size, size, 3]
        Bilinear resampling; pixels from outside the image repeat the nearest border pixel
        (``cv2.BORDER_REPLICATE``), so no black wedges appear for faces at the image edge.
    matrix : float64 [2, 3]
        The similarity image -> crop; map crop points back with ``invert_affine(matrix)``.
    """
    return _align_face(as_image(image), as_landmarks(landmarks), size, padding)


def _align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int, padding: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`align_face` of an image already validated by :func:`as_image` and landmarks by
    :func:`as_landmarks`."""
    size = _check_size(size)
    matrix = similarity_transform(landmarks, canonical_points(size, padding))
    crop = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return crop, matrix


def as_landmarks(landmarks: object, name: str = "landmarks") -> np.ndarray:
    """Validate 5 face landmarks: finite float64 [5, 2] (see the module docstring for order)."""
    return as_points(landmarks, name, N_LANDMARKS)


def _check_size(size: object) -> int:
    return check_int(size, "size", low=MIN_CROP_SIZE, high=MAX_CROP_SIZE)


def _check_padding(padding: object) -> float:
    return check_number(padding, "padding", low=0.0, high=2.0)


def _as_affine(matrix: object) -> np.ndarray:
    if not isinstance(matrix, np.ndarray):
        raise TypeError(f"matrix: expected a numpy.ndarray, got {type(matrix).__name__}")
    if matrix.shape != (2, 3):
        raise ValueError(f"matrix: expected shape (2, 3), got {matrix.shape}")
    if matrix.dtype.kind not in "fiu":
        raise TypeError(f"matrix: expected a numeric array, got {matrix.dtype}")
    matrix = matrix.astype(np.float64)
    if not np.isfinite(matrix).all():
        raise ValueError("matrix: contains NaN or infinity")
    return matrix
