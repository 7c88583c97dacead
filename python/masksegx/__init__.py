"""masksegx: face detection, face attributes and face-mask segmentation with C++ kernels."""

from . import color

__all__ = ["color"]
__version__ = "0.1.0"
