"""masksegx: face detection, face attributes and face-mask segmentation with C++ kernels.

Kernel modules (functions over numpy arrays): :mod:`masksegx.color`, :mod:`masksegx.compensate`,
:mod:`masksegx.filters`, :mod:`masksegx.regions`, :mod:`masksegx.fcm`,
:mod:`masksegx.nn` (CNN layers), :mod:`masksegx.nms`.
MTCNN face detection: :func:`detect_faces` / :class:`FaceDetector` (:mod:`masksegx.detect`).
Face attributes (gender, mask coverage, wearing state): :func:`predict_attributes` /
:class:`AttributePredictor` (:mod:`masksegx.attributes`).
Face alignment from 5 landmarks: :mod:`masksegx.align`; synthetic masked faces:
:mod:`masksegx.synthesis`.
The paper's spectral face-mask extraction: :func:`segment_spectral`.
Evaluation and baselines: :mod:`masksegx.eval`.
"""

from . import align, attributes, color, compensate, detect, fcm, filters, nms, nn, regions, synthesis
from .attributes import AttributePredictor, FaceAttributes, predict_attributes
from .detect import Detections, FaceDetector, detect_faces
from .spectral import SpectralParams, SpectralResult, segment_spectral

__all__ = [
    "align",
    "attributes",
    "color",
    "compensate",
    "detect",
    "fcm",
    "filters",
    "nms",
    "nn",
    "regions",
    "synthesis",
    "segment_spectral",
    "detect_faces",
    "FaceDetector",
    "Detections",
    "AttributePredictor",
    "FaceAttributes",
    "predict_attributes",
    "SpectralParams",
    "SpectralResult",
]
__version__ = "0.1.0"
