"""masksegx: face detection, face attributes and face-mask segmentation with C++ kernels."""

from . import color, fcm, regions

__all__ = ["color", "fcm", "regions"]
__version__ = "0.1.0"
