"""The whole package beside the detectors people would pick instead, on one photo.

The bundled 640x480 street photo with three faces (``masksegx.examples.MULTI_FACE_EXAMPLE``),
one thread unless the row says otherwise: masksegx detection (also without its close-up pass),
the whole ``FaceMaskSegmenter`` call (default backends, and every net on the native executor),
detection and the call with ``threads=2``, and the reference detectors (Ultra-Light RFB-320,
RetinaFace-mnet0.25, YuNet-n through OpenCV, the standard MTCNN weights through our cascade in
onnxruntime) from the folder given by ``--reference-models`` or ``$MASKSEGX_REFERENCE_MODELS``
(default ``../shared/data/models`` beside the repository); their rows are skipped with the
reason when it is missing. ``python -m tools.speed_ratios`` runs the same contenders and prints the ratios.
"""

import cv2
import pytest

import peers
from masksegx.examples import MULTI_FACE_EXAMPLE

NAMES = [peers.DETECTION, peers.DETECTION_THREADS_2, peers.DETECTION_ONE_PASS, peers.PIPELINE,
         peers.PIPELINE_NATIVE, peers.PIPELINE_THREADS_2, peers.RFB, peers.RETINAFACE, peers.YUNET,
         peers.STANDARD_MTCNN]


@pytest.fixture(scope="module")
def contenders(request):
    folder = peers.reference_models_dir(request.config.getoption("--reference-models"))
    return peers.side_by_side(folder)


@pytest.fixture(scope="module")
def street_photo():
    return cv2.imread(MULTI_FACE_EXAMPLE.path)


@pytest.mark.parametrize("name", NAMES)
def test_side_by_side(benchmark, contenders, street_photo, name):
    run = contenders[name]
    if isinstance(run, str):
        pytest.skip(run)
    benchmark.group = "side by side, 640x480 photo with 3 faces"
    benchmark(run, street_photo)
