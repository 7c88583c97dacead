"""masksegx: face detection, face attributes and face-mask segmentation with C++ kernels.

Kernel modules (functions over numpy arrays): :mod:`masksegx.color`, :mod:`masksegx.compensate`,
:mod:`masksegx.filters`, :mod:`masksegx.regions`, :mod:`masksegx.fcm`,
:mod:`masksegx.nn` (CNN layers), :mod:`masksegx.nms`.
MTCNN face detection: :func:`detect_faces` / :class:`FaceDetector` (:mod:`masksegx.detect`).
Face attributes (gender, mask coverage, wearing state): :func:`predict_attributes` /
:class:`AttributePredictor` (:mod:`masksegx.attributes`).
Face alignment from 5 landmarks: :mod:`masksegx.align`; synthetic masked faces:
:mod:`masksegx.synthesis`.
The paper's spectral face-mask extraction: :func:`segment_spectral`; the learned path
:class:`MaskNet` / :func:`segment_learned` and the fused method :func:`segment_fused`
(:mod:`masksegx.learned`).
The whole pipeline (detect, attributes, segment): :class:`FaceMaskSegmenter`; COCO RLE masks:
:mod:`masksegx.rle`. Reading image and mask files: :mod:`masksegx.io`; box conventions, IoU
and NMS: :mod:`masksegx.boxes`.
Evaluation and baselines: :mod:`masksegx.eval`.
"""

from . import align, attributes, color, compensate, detect, fcm, filters, nms, nn, regions, rle, synthesis
from .attributes import AttributePredictor, FaceAttributes, predict_attributes
from .detect import Detections, FaceDetector, detect_faces
from .learned import FusedParams, MaskNet, segment_fused, segment_learned
from .pipeline import Face, FaceMaskSegmenter
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
    "rle",
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
    "FaceMaskSegmenter",
    "Face",
    "MaskNet",
    "FusedParams",
    "segment_learned",
    "segment_fused",
]
__version__ = "0.1.0"
