"""masksegx: face detection, face attributes and face-mask segmentation with C++ kernels.

Kernel modules (functions over numpy arrays): :mod:`masksegx.color`, :mod:`masksegx.compensate`,
:mod:`masksegx.filters`, :mod:`masksegx.regions`, :mod:`masksegx.fcm`,
:mod:`masksegx.nn` (CNN layers), :mod:`masksegx.nms`.
Face alignment from 5 landmarks: :mod:`masksegx.align`; synthetic masked faces:
:mod:`masksegx.synthesis`.
The paper's spectral face-mask extraction: :func:`segment_spectral`.
Evaluation and baselines: :mod:`masksegx.eval`.
"""

from . import align, color, compensate, fcm, filters, nms, nn, regions, synthesis
from .spectral import SpectralParams, SpectralResult, segment_spectral

__all__ = [
    "align",
    "color",
    "compensate",
    "fcm",
    "filters",
    "nms",
    "nn",
    "regions",
    "synthesis",
    "segment_spectral",
    "SpectralParams",
    "SpectralResult",
]
__version__ = "0.1.0"
