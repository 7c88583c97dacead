"""Single-thread latency per face of the attribute network (onnxruntime, one intra-op thread):
the whole call (alignment + resize + net on the crop and its mirror image + marginals; and with
``mirror=False``, one pass) and one pass of the net alone, beside the gender-v1 reference (dlib's
32x32 gender classifier, incl. its chip extraction) on the same face.

gender-v1 is not shipped: it is looked up in ``$MASKSEGX_SHARED_DATA/models`` (default: the first
``shared/data`` found beside the repository or one folder higher) and its cases are skipped when
it is missing.
"""

import os

import cv2
import numpy as np
import pytest

import masksegx
from conftest import EXAMPLE
from masksegx.attributes import DEFAULT_MODEL, AttributePredictor

HERE = os.path.dirname(__file__)
_CANDIDATES = [os.path.join(HERE, *[".."] * up, "shared", "data") for up in (2, 3)]
SHARED = os.environ.get(
    "MASKSEGX_SHARED_DATA", next((p for p in _CANDIDATES if os.path.isdir(p)), _CANDIDATES[0])
)
GENDER_V1 = os.path.join(SHARED, "models", "gender-v1.onnx")

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="no shipped attribute model")


@pytest.fixture(scope="module")
def predictor():
    return AttributePredictor(threads=1)


@pytest.fixture(scope="module")
def face():
    """The bundled photo resized to 640x480 and its first face's landmarks (the per-face cost
    does not depend on the image size: the face is warped to the net's crop)."""
    image = cv2.resize(cv2.imread(EXAMPLE), (640, 480), interpolation=cv2.INTER_AREA)
    found = masksegx.detect_faces(image)
    assert len(found) >= 1
    return image, found.landmarks[0]


def test_attributes_per_face(benchmark, predictor, face):
    image, landmarks = face
    benchmark.group = f"attributes per face {image.shape[1]}x{image.shape[0]}"
    result = benchmark(predictor, image, landmarks)
    assert len(result) == 1


def test_attributes_per_face_single_pass(benchmark, face):
    image, landmarks = face
    predictor = AttributePredictor(threads=1, mirror=False)
    benchmark.group = f"attributes per face {image.shape[1]}x{image.shape[0]}"
    assert len(benchmark(predictor, image, landmarks)) == 1


def test_attributes_net_only(benchmark, predictor, face):
    image, landmarks = face
    benchmark.group = f"attributes per face {image.shape[1]}x{image.shape[0]}"
    blob = predictor.preprocess(image, landmarks[None].astype(np.float64))
    benchmark(predictor._net.run, blob)


def test_gender_v1_per_face(benchmark, face):
    if not os.path.isfile(GENDER_V1):
        pytest.skip("gender-v1.onnx not found (set MASKSEGX_SHARED_DATA)")
    from masksegx.eval.attributes import GenderV1

    reference = GenderV1(GENDER_V1, threads=1)
    image, landmarks = face
    benchmark.group = f"attributes per face {image.shape[1]}x{image.shape[0]}"
    benchmark(reference.p_male, image, landmarks)
