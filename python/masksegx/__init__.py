"""masksegx: face detection, face attributes and face-mask segmentation with C++ kernels."""

from . import color, compensate, filters

__all__ = ["color", "compensate", "filters"]
__version__ = "0.1.0"
