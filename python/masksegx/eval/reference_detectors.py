"""Reference face detectors run with onnxruntime, to compare the package's MTCNN against.

The models are not shipped with the package (they live in ``shared/data/models``); every class
takes the path of its ``.onnx`` file. Each detector is a callable
``detector(image_bgr) -> (boxes float32 [N,4] x1,y1,x2,y2 in pixels, scores float32 [N],
landmarks float32 [N,5,2] or None)``, boxes clipped to the image (exclusive ends, see
:mod:`masksegx.boxes`), sorted by descending score.

- :class:`UltraLightDetector`: Linzaer's Ultra-Light-Fast-Generic-Face-Detector
  (``version-RFB-320.onnx``, and the 3-class ``RFB-640-masked_face-v2.onnx`` whose face score
  is the larger of its ``face`` and ``masked_face`` probabilities). No landmarks.
- :class:`RetinaFaceDetector`: RetinaFace MobileNet-0.25 (``retinaface_mnet025_512.onnx``),
  with 5 landmarks.
- :class:`YuNetDetector`: YuNet-n (``yunet_n_dynamic.onnx``) through OpenCV's
  ``cv2.FaceDetectorYN``, at the image's own size, with 5 landmarks.
- :func:`make_detector`: a detector by the command-line name (:data:`DETECTOR_NAMES`), the
  package's own MTCNN cascade included.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import cv2
import numpy as np

from .._models import onnx_session
from .._validation import as_image, check_threads
from ..boxes import nms_exclusive

if TYPE_CHECKING:
    import onnxruntime

#: Detector output: boxes [N,4], scores [N], landmarks [N,5,2] or None.
Detections = tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]

#: Model file of each reference detector name, inside ``--models-dir``.
REFERENCE_MODELS = {
    "ultralight": "version-RFB-320.onnx",
    "ultralight-masked": "RFB-640-masked_face-v2.onnx",
    "retinaface": "retinaface_mnet025_512.onnx",
    "yunet": "yunet_n_dynamic.onnx",
}
DETECTOR_NAMES = ("mtcnn", *REFERENCE_MODELS)
#: The standard MTCNN weights in ``shared/data/models`` (P-, R-, O-net).
STANDARD_MTCNN_MODELS = ("mtcnn_pnet.onnx", "mtcnn_rnet.onnx", "mtcnn_onet.onnx")


class DetectorUnavailable(RuntimeError):
    """A detector cannot be built: its model file or its module is missing."""


def _session(path: str | os.PathLike[str], threads: int) -> onnxruntime.InferenceSession:
    if not Path(path).is_file():
        raise DetectorUnavailable(f"model file not found: {os.fspath(path)!r}")
    return onnx_session(os.path.realpath(path), check_threads(threads), "path")


def _finish(
    boxes: np.ndarray,
    scores: np.ndarray,
    landmarks: np.ndarray | None,
    shape: tuple[int, ...],
    nms_iou: float,
) -> Detections:
    """NMS, then clip boxes to the image; float32 outputs."""
    keep = nms_exclusive(boxes, scores, nms_iou)
    boxes = boxes[keep]
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, shape[1])
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, shape[0])
    return (
        boxes.astype(np.float32),
        scores[keep].astype(np.float32),
        None if landmarks is None else landmarks[keep].astype(np.float32),
    )


class UltraLightDetector:
    """Ultra-Light face detector (RFB-320, or the 3-class RFB-640 masked-face model).

    The whole image is resized (bilinear, aspect not kept) to the model input, RGB,
    ``(pixel - 127) / 128``; the graph returns decoded boxes as fractions of the input. A face
    score is the ``face`` probability, or for 3-class models the larger of ``face`` and
    ``masked_face``; boxes with score > ``score_threshold`` go through hard NMS at ``nms_iou``
    (upstream demo values 0.7 and 0.3).

    Parameters
    ----------
    path : the ``.onnx`` file.
    input_size : (width, height) of the model input; None = the model's fixed input shape.
    threads : onnxruntime intra-op threads.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        input_size: tuple[int, int] | None = None,
        *,
        score_threshold: float = 0.7,
        nms_iou: float = 0.3,
        threads: int = 1,
    ) -> None:
        self._session = _session(path, threads)
        self._input = self._session.get_inputs()[0].name
        if input_size is None:
            height, width = self._session.get_inputs()[0].shape[2:]
            if not (isinstance(width, int) and isinstance(height, int)):
                raise ValueError("input_size: the model input is dynamic, give (width, height)")
            input_size = (width, height)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        image = as_image(image_bgr, "image_bgr")
        height, width = image.shape[:2]
        rgb = cv2.cvtColor(cv2.resize(image, self.input_size), cv2.COLOR_BGR2RGB)
        blob = ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        probabilities, boxes = self._session.run(["scores", "boxes"], {self._input: blob})
        scores = probabilities[0, :, 1:].max(axis=1)
        chosen = scores > self.score_threshold
        boxes = boxes[0, chosen].astype(np.float64) * [width, height, width, height]
        return _finish(boxes, scores[chosen], None, image.shape, self.nms_iou)


def retinaface_priors(size: int = 512) -> np.ndarray:
    """RetinaFace (``cfg_mnet``) priors for a square ``size`` input: float64 [P, 4] ``(cx, cy,
    w, h)`` as fractions of ``size``; order level, row, column, min size (10752 for 512)."""
    priors = []
    for step, min_sizes in ((8, (10, 20)), (16, (32, 64)), (32, (128, 256))):
        cells = int(np.ceil(size / step))
        rows, cols = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = np.stack([(cols + 0.5) * step / size, (rows + 0.5) * step / size], axis=-1)
        for_level = np.empty((cells, cells, len(min_sizes), 4))
        for k, min_size in enumerate(min_sizes):
            for_level[:, :, k, :2] = centres
            for_level[:, :, k, 2:] = min_size / size
        priors.append(for_level.reshape(-1, 4))
    return np.concatenate(priors)


def decode_retinaface(
    loc: np.ndarray,
    landms: np.ndarray,
    priors: np.ndarray,
    variances: tuple[float, float] = (0.1, 0.2),
) -> tuple[np.ndarray, np.ndarray]:
    """Decode RetinaFace offsets into boxes [P,4] ``x1,y1,x2,y2`` and landmarks [P,5,2], both
    in the priors' units (fractions of the input side).

    centre = prior centre + ``loc[:2] * v0 * prior size``; size = prior size *
    ``exp(loc[2:] * v1)``; landmark k = prior centre + ``landms[2k:2k+2] * v0 * prior size``.
    """
    centre, extent = priors[:, :2], priors[:, 2:]
    box_centre = centre + loc[:, :2] * variances[0] * extent
    box_size = extent * np.exp(loc[:, 2:] * variances[1])
    boxes = np.concatenate([box_centre - box_size / 2, box_centre + box_size / 2], axis=1)
    points = centre[:, None, :] + landms.reshape(-1, 5, 2) * variances[0] * extent[:, None, :]
    return boxes, points


class RetinaFaceDetector:
    """RetinaFace MobileNet-0.25 on a fixed square input (``retinaface_mnet025_512.onnx``).

    Letterbox: the image is resized (bilinear) keeping its aspect ratio so that its longer side
    is ``size``, placed at the top-left of a ``size`` x ``size`` canvas padded with the mean
    colour (so padding is 0 after normalisation); BGR, ``pixel - (104, 117, 123)``. Boxes and
    landmarks are decoded (:func:`decode_retinaface`), boxes with face probability >
    ``score_threshold`` go through hard NMS at ``nms_iou``, and both are mapped back to image
    pixels.
    """

    MEAN_BGR = (104.0, 117.0, 123.0)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        score_threshold: float = 0.5,
        nms_iou: float = 0.4,
        threads: int = 1,
    ) -> None:
        self._session = _session(path, threads)
        self._input = self._session.get_inputs()[0].name
        self.size = int(self._session.get_inputs()[0].shape[2])
        self._priors = retinaface_priors(self.size)
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        image = as_image(image_bgr, "image_bgr")
        height, width = image.shape[:2]
        scale = self.size / max(height, width)
        new_w = min(self.size, max(1, round(width * scale)))
        new_h = min(self.size, max(1, round(height * scale)))
        canvas = np.empty((self.size, self.size, 3), np.float32)
        canvas[:] = self.MEAN_BGR
        canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
        blob = (canvas - np.array(self.MEAN_BGR, np.float32)).transpose(2, 0, 1)[None]
        loc, conf, landms = self._session.run(["loc", "conf", "landms"], {self._input: blob})
        scores = conf[0, :, 1]
        chosen = scores > self.score_threshold
        boxes, points = decode_retinaface(
            loc[0, chosen].astype(np.float64), landms[0, chosen], self._priors[chosen]
        )
        to_pixels = self.size / scale
        return _finish(
            boxes * to_pixels, scores[chosen], points * to_pixels, image.shape, self.nms_iou
        )


class YuNetDetector:
    """YuNet-n run by OpenCV's ``cv2.FaceDetectorYN`` on the whole image at its own size.

    OpenCV decodes the outputs, keeps scores >= ``score_threshold`` (0.6: OpenCV's default 0.9
    misses many masked faces) and runs NMS at ``nms_iou``. Its landmark order (the subject's
    right eye first, i.e. the image-left one) is already the image-left-first order used here.
    ``threads`` sets OpenCV's thread count for the whole process (``cv2.setNumThreads``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        score_threshold: float = 0.6,
        nms_iou: float = 0.3,
        threads: int = 1,
    ) -> None:
        if not Path(path).is_file():
            raise DetectorUnavailable(f"model file not found: {os.fspath(path)!r}")
        cv2.setNumThreads(check_threads(threads))
        self._detector = cv2.FaceDetectorYN.create(
            os.fspath(path), "", (320, 320), score_threshold, nms_iou, 5000
        )
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self._lock = threading.Lock()  # the input size is state of the OpenCV object

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        image = as_image(image_bgr, "image_bgr")
        height, width = image.shape[:2]
        with self._lock:
            self._detector.setInputSize((width, height))
            found: np.ndarray | None = self._detector.detect(np.ascontiguousarray(image))[1]
        rows = np.zeros((0, 15), np.float32) if found is None else found  # None: no face
        rows = rows[np.argsort(-rows[:, 14], kind="stable")].astype(np.float64)
        boxes = np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], axis=1)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
        return (
            boxes.astype(np.float32),
            rows[:, 14].astype(np.float32),
            rows[:, 4:14].reshape(-1, 5, 2).astype(np.float32),
        )


def mtcnn_detector(
    backend: str = "native",
    models: Sequence[str | os.PathLike[str]] | None = None,
    threads: int = 1,
    close_up_models: Sequence[str | os.PathLike[str]] | None = None,
) -> Callable[[np.ndarray], Detections]:
    """The package's MTCNN cascade (:func:`masksegx.detect.detect_faces`) as a detector.

    ``models``: (P-net, R-net, O-net[, landmark net]) ``.onnx`` paths to run instead of the
    shipped weights; ``close_up_models``: the close-up pass's (P, R, O) paths (see
    :class:`~masksegx.detect.FaceDetector`).
    ``threads``: onnxruntime intra-op threads (backend "onnxruntime"), 1 like the reference
    detectors, so timings compare single-threaded work.
    DetectorUnavailable when :mod:`masksegx.detect` is missing or a model file does not exist.
    """
    try:
        from ..detect import FaceDetector
    except ImportError as err:
        raise DetectorUnavailable(f"the MTCNN cascade (masksegx.detect) is unavailable: {err}") from err
    missing = [os.fspath(p) for p in (*(models or ()), *(close_up_models or ()))
               if not Path(p).is_file()]
    if missing:
        raise DetectorUnavailable(f"model file not found: {missing[0]!r}")
    detector = FaceDetector(
        None if models is None else tuple(os.fspath(p) for p in models),
        backend=backend, onnxruntime_threads=threads,
        close_up_models=None if close_up_models is None else tuple(os.fspath(p) for p in close_up_models),
    )

    def detect(image_bgr: np.ndarray) -> Detections:
        found = detector(image_bgr)
        return found.boxes, found.scores, found.landmarks

    return detect


def make_detector(
    name: str, models_dir: str | os.PathLike[str] | None = None, *, threads: int = 1
) -> Callable[[np.ndarray], Detections]:
    """A detector by name (:data:`DETECTOR_NAMES`): ``mtcnn`` = the package's cascade with its
    shipped weights (native backend), the others = reference models in ``models_dir``
    (:data:`REFERENCE_MODELS`). DetectorUnavailable when its model or module is missing."""
    if name == "mtcnn":
        return mtcnn_detector(threads=threads)
    if name not in REFERENCE_MODELS:
        raise ValueError(f"name: expected one of {DETECTOR_NAMES}, got {name!r}")
    if models_dir is None:
        raise DetectorUnavailable(f"detector {name!r} needs the models directory (--models-dir)")
    path = Path(models_dir) / REFERENCE_MODELS[name]
    if name == "retinaface":
        return RetinaFaceDetector(path, threads=threads)
    if name == "yunet":
        return YuNetDetector(path, threads=threads)
    return UltraLightDetector(path, threads=threads)
