"""MTCNN face detection (P-, R- and O-net cascade) on the masksegx kernels or onnxruntime.

The cascade follows facenet-pytorch 2.6 (``facenet_pytorch/models/utils/detect_face.py``):

1. Image pyramid: scales ``s_k = (12 / min_face_size) * scale_factor**k`` while
   ``min(H, W) * s_k >= 6`` (facenet-pytorch: 12; the padded levels below 12 px let the 12x12
   window hold a face up to twice the image's shorter side: a close-up cut by the frame);
   level k is the image resized to ``(int(H s_k + 1), int(W s_k + 1))``
   with area interpolation, normalised as ``(pixel - 127.5) / 128`` (RGB, NCHW). Levels 0-2
   are resampled from the image, level k >= 3 from level k - 3 (a deviation from facenet-pytorch
   for speed; area of area, at least 2.8x smaller each time).
2. P-net on every level, the levels with a shorter side of at most 160 pixels with a black
   border of ``p`` = 4 pixels around them (``p`` = 0 on the others; a deviation from
   facenet-pytorch: a face cut by the frame still fills a 12x12 window, and black beyond the
   edge is what the nets saw in training), those small levels in one P-net call on a black
   canvas (:func:`_tiled`: the cells of each level as if it ran alone); each output cell
   ``(row, col)`` with face probability ``>= thresholds[0]`` proposes ``floor((2 col - p + 1) / s)``,
   ``floor((2 row - p + 1) / s)``, ``floor((2 col - p + 12) / s)``,
   ``floor((2 row - p + 12) / s)``; NMS ``nms_thresholds[0]`` per level,
   NMS ``nms_thresholds[1]`` over all levels, box regression with the box width ``x2 - x1``,
   then squaring (rerec).
3. R-net on 24x24 crops; keep probability ``> thresholds[1]``, NMS ``nms_thresholds[1]``,
   regression with width ``x2 - x1 + 1``, squaring.
4. O-net on 48x48 crops; keep probability ``> thresholds[2]``, regression, NMS
   ``nms_thresholds[2]`` with the "min" overlap. With the shipped nets, candidates at least
   :data:`CLOSE_UP_MIN_FACE` of the image's shorter side go to the close-up pass's O-net (the
   first pass's O-net learned crowds and rejects loose crops of large faces).
5. Landmarks of the kept faces, from the landmark net (L-net) run on their O-net crops when the
   detector has one (the package's nets do; with ``mirror_landmarks`` also on the mirrored
   crops, the two answers averaged: :func:`_landmarks_with_mirror`), else from the O-net.
   Mapped into the image from the box before regression.
6. With ``close_ups`` (the default), steps 1-5 once more for faces at least
   :data:`CLOSE_UP_MIN_FACE` of the image's shorter side, every pyramid level with a black
   border of :data:`CLOSE_UP_BORDER` of its sides (the image seen small, in the middle of a
   black frame; a deviation from facenet-pytorch): faces that fill or overflow the frame are
   proposed where they lie whole on the level. With the shipped nets this pass has an R- and
   an O-net of its own (:data:`~masksegx._models.CLOSE_UP_MODELS`). A face of this pass is added
   where it overlaps no face of the first pass by an IoU above :data:`CLOSE_UP_NMS` (without
   the +1 pixel); the first pass's faces stay as they are.
7. With ``second_look`` (the default), where steps 1-6 found no face in a small image, steps 1-5
   once more on the pyramid levels for faces from :data:`SECOND_LOOK_MIN_FACE` px up to half a
   pyramid step below ``min_face_size``, the first level capped at
   :data:`SECOND_LOOK_PIXELS` (a deviation from facenet-pytorch).
8. With ``calibrated_boxes`` (the default for the package's nets), the faces' boxes redrawn in the evaluation
   annotations' convention, :data:`OUTPUT_CONVENTION` (a deviation from facenet-pytorch).

The IoU of the first two stages is measured without the +1 pixel (torchvision's ``nms``, as
facenet-pytorch uses there) and the last NMS with the +1 (its ``batched_nms_numpy``). A crop is
its box (corners truncated to integers) resized to the net input by area resampling
(:func:`masksegx.nn.resize_area`, OpenCV's ``INTER_AREA`` where both sides shrink or both
grow), black where the box leaves the image (facenet-pytorch stretches the part inside over
the whole crop; the original MTCNN and our training pad, as here); boxes entirely outside the
image are dropped. Returned boxes are not clipped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from . import _core
from ._executor import MAX_KEPT_FLOATS, NativeNet
from ._models import (
    CLOSE_UP_MODELS,
    DETECTOR_MODELS,
    cached,
    model_file,
    onnx_session,
    run_in_parallel,
    submit_to_pool,
)
from ._models import MODEL_DIR as MODEL_DIR  # re-exported: masksegx.detect.MODEL_DIR
from ._models import ModelNotFoundError as ModelNotFoundError  # re-exported, users catch it here
from ._validation import MAX_SIDE, as_image, check_bool, check_number, check_order, check_threads
from .boxes import REFERENCE, BoxConvention, _iou, _nms_exclusive, redraw
from .nms import nms

PathLike = Union[str, "os.PathLike[str]"]
Runner = Callable[[np.ndarray], dict[str, np.ndarray]]

BACKENDS = ("native", "onnxruntime")
#: Smallest ``min_face_size``: the P-net sees 12 px faces, so the pyramid's first level is the
#: image enlarged ``12 / min_face_size`` times per side, at most 4 (16 times the pixels).
MIN_FACE_SIZE = 3.0
#: Fewest P-net cell rows in a row band of a large level (its input repeats the 10 rows its
#: windows share with the next band: a fifth more input rows at this size).
_MIN_BAND_ROWS = 24
#: Largest ``scale_factor``: closer to 1 the pyramid's levels (all allocated at once) grow
#: without bound; at 0.95 they hold at most ``1 / (1 - 0.95**2)``, about 10, first levels.
MAX_SCALE_FACTOR = 0.95
_NET_OUTPUTS = (("reg", "prob"), ("reg", "prob"), ("reg", "prob", "landmarks"), ("landmarks",))
#: The close-up pass (``close_ups``) looks for faces at least this share of the image's shorter
#: side (a smaller share adds P-net work on larger levels; the settings screened are in
#: docs/detection.md) ...
CLOSE_UP_MIN_FACE = 0.5
#: ... on pyramid levels with a black border of this share of their height and width on each
#: side ...
CLOSE_UP_BORDER = 0.5
#: ... with this ratio between levels (the pass's levels are small, so a finer pyramid than
#: the first pass's costs little and depends less on where a face falls on the levels' grid) ...
CLOSE_UP_SCALE_FACTOR = 0.9
#: ... and it adds the faces that overlap none of the first pass's above this IoU (at 0.5 it
#: added boxes shifted off a face the first pass had found on synthetic single-face photos).
#: The first pass's face is kept over a better-scored one of this pass: its crop is framed as
#: the landmark net was trained (docs/detection.md has the screen).
CLOSE_UP_NMS = 0.3
#: When the passes find no face in a small image, the second look (``second_look``) runs the
#: first pass on larger pyramid levels, for faces down to this side, as far as its first level
#: stays within the pixels of a 640 x 480 photo's at the default 20 px
#: (:data:`SECOND_LOOK_PIXELS`): no slower than one first pass on such a photo (figures in
#: docs/detection.md).
SECOND_LOOK_MIN_FACE = 12.0
SECOND_LOOK_PIXELS = 640 * 480 * (12 / 20) ** 2
#: Where the annotators of det/facemask and det/ilc2021 draw a face's box relative to the
#: cascade's own (pooled medians over the faces of their training splits that a detection
#: overlaps at IoU >= 0.4; ``python -m masksegx.training.box_conventions --detector``): with
#: ``calibrated_boxes`` the detector returns its boxes redrawn so (figures in docs/detection.md).
OUTPUT_CONVENTION = BoxConvention(shift_x=-0.019, shift_y=-0.03, width=0.966, height=0.949)
#: P-, R- and O-net face probability thresholds (the O-net's 0.6 since session 10's
#: crowd-trained O-net; docs/detection.md has the screen).
DEFAULT_THRESHOLDS = (0.6, 0.7, 0.6)


@dataclass(frozen=True)
class Detections:
    """Faces found in one image.

    boxes : float32 (N, 4) ``x1, y1, x2, y2`` in pixels (corners, last pixel included as in
        MTCNN: the inclusive-end convention of :mod:`masksegx.boxes`; may extend past the image;
        drawn by :data:`OUTPUT_CONVENTION` unless the detector has ``calibrated_boxes=False``).
    scores : float32 (N,) O-net face probability in (threshold, 1], best first.
    landmarks : float32 (N, 5, 2) ``x, y`` of the left eye, right eye, nose, left and right mouth
        corner, "left" meaning the image's left.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


class FaceDetector:
    """An MTCNN cascade with fixed models and settings; call it on images.

    Parameters
    ----------
    models : None for the package's shipped ``models/ds_mtcnn_{pnet,rnet,onet,lnet}.onnx`` (and
        ``ds_mtcnn_{rnet,onet}_closeup.onnx``, the R- and O-net of the close-up pass), or
        the paths of three ONNX nets (P, R, O) with input ``[N, 3, H, W]`` and outputs ``reg``,
        ``prob`` (+ ``landmarks`` for the O-net), normalised as the reference MTCNN; or four,
        the fourth a landmark net on the O-net's crops with output ``landmarks``.
    backend : ``"native"`` (masksegx C++ kernels) or ``"onnxruntime"``.
    min_face_size : smallest face side searched, in pixels (>= :data:`MIN_FACE_SIZE`, 3; below 12
        the image is enlarged, at most 4x per side, and refused if a side would exceed 32768).
    thresholds : face-probability thresholds of the P-, R- and O-net, each in [0, 1].
    scale_factor : ratio between pyramid levels, in (0, :data:`MAX_SCALE_FACTOR`] (0.95: the
        pyramid then holds at most about 10 times its first level).
    nms_thresholds : overlap thresholds of the per-level, the cross-level and R-net, and the final
        NMS, each in [0, 1].
    order : channel order of the images, ``"bgr"`` (cv2.imread) or ``"rgb"``.
    onnxruntime_threads : intra-op threads of the onnxruntime sessions (0 = its default).
    mirror_landmarks : also run the landmark net on each face's mirror image and average the two
        answers: a lower landmark error (figures in docs/detection.md), for one more landmark-net pass
        per face. No effect on three-net model sets.
    close_ups : also search the image for faces of at least half its shorter side with a wide
        black frame around it (:data:`CLOSE_UP_BORDER`): close-ups cut by the frame (forehead or
        chin outside the photo) are found far more often (figures and cost in
        docs/detection.md). False: one pass, as the reference MTCNN. The pass runs the nets
        of ``close_up_model_paths`` (see ``close_up_models``).
    second_look : where the passes find no face in a small image, run the first pass again on
        larger pyramid levels (default True): faces from :data:`SECOND_LOOK_MIN_FACE` px up to
        half a pyramid step below ``min_face_size``, in images small enough that this costs no
        more than one first pass on a 640 x 480 photo (:data:`SECOND_LOOK_PIXELS`; at the
        default 20 px, images below about 540 x 400). Free on images with faces; figures in
        docs/detection.md. For a strict smallest face, pass ``second_look=False``.
    calibrated_boxes : return each box redrawn in the convention of the annotations the
        detector is evaluated on (:data:`OUTPUT_CONVENTION`): a little smaller and higher than
        the cascade's own box. False: the cascade's box, as the reference MTCNN returns it.
        None (default): True with the package's P-, R- and O-net (which it was measured for),
        False with other nets. Scores and landmarks do not change.
    close_up_models : the close-up pass's three nets (P, R, O), paths as in ``models``; None:
        the shipped ``ds_mtcnn_pnet.onnx`` and ``ds_mtcnn_{rnet,onet}_closeup.onnx`` when
        ``models`` is None, else the first three of ``models``. Where its O-net is not the
        first pass's, it also judges the first pass's candidates of at least
        :data:`CLOSE_UP_MIN_FACE` of the image's shorter side, with or without ``close_ups``.
    threads : the most threads one call uses (1, the default: the calling thread only). With N >= 2
        the close-up pass runs on a pool thread beside the first pass, the P-net on N pyramid
        levels at a time, each large level in N row bands (each thread takes the largest band
        or level left; the small levels, tiled on one canvas, count as one), the crops are
        resampled in N parts and the R-, O- and landmark nets run on N parts of their crops at
        a time (chunks of :data:`_CHUNK` crops);
        the N - 1 extra threads come from a pool shared by the process (see
        :class:`~masksegx.FaceMaskSegmenter`). Each net still runs single-threaded, so give
        onnxruntime sessions ``onnxruntime_threads=1`` to avoid oversubscription. Results do not
        depend on N.

    Notes
    -----
    Nets are loaded once per file and backend and shared by every detector; a detector holds no
    mutable state, so concurrent calls from several threads are safe.
    """

    def __init__(
        self,
        models: Sequence[PathLike] | None = None,
        *,
        backend: str = "native",
        min_face_size: float = 20,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        scale_factor: float = 0.709,
        nms_thresholds: Sequence[float] = (0.5, 0.7, 0.7),
        order: str = "bgr",
        onnxruntime_threads: int = 0,
        mirror_landmarks: bool = False,
        close_ups: bool = True,
        threads: int = 1,
        close_up_models: Sequence[PathLike] | None = None,
        second_look: bool = True,
        calibrated_boxes: bool | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.min_face_size = check_number(min_face_size, "min_face_size", low=MIN_FACE_SIZE)
        self.thresholds = _triple(thresholds, "thresholds")
        self.nms_thresholds = _triple(nms_thresholds, "nms_thresholds")
        self.scale_factor = check_number(
            scale_factor, "scale_factor", low=0.0, low_open=True, high=MAX_SCALE_FACTOR
        )
        self.order = check_order(order)
        onnxruntime_threads = check_threads(onnxruntime_threads, "onnxruntime_threads", minimum=0)
        self.mirror_landmarks = check_bool(mirror_landmarks, "mirror_landmarks")
        self.close_ups = check_bool(close_ups, "close_ups")
        self.second_look = check_bool(second_look, "second_look")
        self.threads = check_threads(threads)
        self.model_paths = _model_paths(models)
        self.close_up_model_paths = _close_up_model_paths(close_up_models, models, self.model_paths)
        self.calibrated_boxes = (
            self.model_paths[:3] == _SHIPPED_PATHS[:3]
            if calibrated_boxes is None
            else check_bool(calibrated_boxes, "calibrated_boxes")
        )
        self._nets = tuple(
            _load(path, backend, onnxruntime_threads, outputs)
            for path, outputs in zip(self.model_paths, _NET_OUTPUTS)
        )
        self._close_up_nets = tuple(
            net if path == first else _load(path, backend, onnxruntime_threads, outputs)
            for path, first, net, outputs in zip(
                self.close_up_model_paths, self.model_paths, self._nets, _NET_OUTPUTS
            )
        )

    def __call__(self, image: np.ndarray) -> Detections:
        """Detect the faces of a uint8 HxWx3 image (channel order as ``order``)."""
        return self._detect(as_image(image))

    def _detect(self, image: np.ndarray) -> Detections:
        """The call of an image already validated by :func:`as_image`."""
        source = _Source(image, self.order == "bgr")

        def first_pass() -> _Faces:
            return self._cascade(
                self._nets, source, self.min_face_size, 0.0, self.scale_factor,
                large_onet=self._close_up_nets[2],
            )

        height, width = image.shape[:2]
        smallest = max(self.min_face_size, CLOSE_UP_MIN_FACE * min(height, width))

        def close_up_pass() -> _Faces:
            return self._cascade(
                self._close_up_nets, source, smallest, CLOSE_UP_BORDER, CLOSE_UP_SCALE_FACTOR
            )

        if not self.close_ups:
            faces = first_pass()
        elif self.threads < 2:
            faces = _merged(first_pass(), close_up_pass())
        else:
            # The close-up pass on a pool thread keeps it busy while this thread runs the first
            # pass's serial parts (pyramid, boxes, NMS); the first pass's nets queue behind it.
            close_up = submit_to_pool(self.threads, close_up_pass)
            faces = _merged(first_pass(), close_up.result())
        if self.second_look and len(faces.found) == 0:
            faces = self._second_look(source)
        return self._with_landmarks(faces)

    def _second_look(self, source: _Source) -> _Faces:
        """The faces of ``second_look``: in a small image, the first pass on the pyramid levels
        for faces from :data:`SECOND_LOOK_MIN_FACE` up to half a pyramid step below
        ``min_face_size`` (a level closer to the first pass's first one would repeat it)."""
        height, width = source.pixels.shape[:2]
        smallest = SECOND_LOOK_MIN_FACE * max(1.0, (height * width / SECOND_LOOK_PIXELS) ** 0.5)
        below = self.min_face_size * self.scale_factor**0.5
        if smallest >= below:
            return _Faces.none()
        return self._cascade(
            self._nets, source, smallest, 0.0, self.scale_factor, self._close_up_nets[2], below
        )

    def _cascade(
        self, nets: Sequence[Runner], source: _Source, min_face_size: float, border: float,
        scale_factor: float, large_onet: Runner | None = None, below: float = np.inf,
    ) -> _Faces:
        """One pass of the cascade ``nets`` (P, R, O) for faces of at least ``min_face_size``
        pixels on a pyramid of ``scale_factor`` steps, its levels with a black border of
        ``border`` times their sides (0: the usual pass); ``large_onet`` (default: the O-net of
        ``nets``) judges the candidates of at least :data:`CLOSE_UP_MIN_FACE` of the image's
        shorter side; ``below``: only the pyramid levels that look for faces smaller than this
        many pixels."""
        pnet, rnet, onet = nets[:3]
        boxes = self._propose(source, pnet, min_face_size, border, scale_factor, below)
        if len(boxes):
            boxes = self._refine(source, boxes, rnet)
        if len(boxes):
            return self._output(source, boxes, onet, onet if large_onet is None else large_onet)
        return _Faces.none()

    def _scales(
        self, height: int, width: int, min_face_size: float, scale_factor: float, below: float
    ) -> list[float]:
        scale = 12.0 / min_face_size
        shortest = min(height, width) * scale
        if max(height, width) * scale + 1 > MAX_SIDE:
            raise ValueError(f"min_face_size: {self.min_face_size} enlarges the image too much")
        scales = []
        while shortest >= _SMALLEST_LEVEL_SIDE and scale > 12.0 / below:
            scales.append(scale)
            scale *= scale_factor
            shortest *= scale_factor
        return scales

    def _propose(
        self, image: _Source, pnet: Runner, min_face_size: float, border: float,
        scale_factor: float, below: float,
    ) -> np.ndarray:
        """P-net stage: squared candidate boxes [K, 5] (x1, y1, x2, y2, score)."""
        height, width = image.pixels.shape[:2]
        levels: list[np.ndarray] = []  # planar [3, h, w] levels (see _PYRAMID_STEP)
        scales = self._scales(height, width, min_face_size, scale_factor, below)
        total = sum(3 * int(height * s + 1) * int(width * s + 1) for s in scales)  # all levels
        buffer, used = _level_buffer(total), 0
        for index, scale in enumerate(scales):
            size = (int(height * scale + 1), int(width * scale + 1))
            count = 3 * size[0] * size[1]
            level = buffer[used : used + count].reshape(1, 3, *size)
            used += count
            if index < _PYRAMID_STEP:
                image.resample(np.array([[0, 0, width, height]], np.int64), size, level)
            else:
                source = levels[index - _PYRAMID_STEP]
                whole = np.array([[0, 0, source.shape[2], source.shape[1]]], np.int64)
                _core.resize_area_boxes(source, whole, size, level)
            levels.append(level[0])

        if not levels:
            return np.zeros((0, 5), np.float32)
        borders = [_level_border(level.shape[1], level.shape[2], border) for level in levels]
        # Each large level is a P-net call of its own, in row bands with two threads or more so
        # that the threads share the largest levels (the P-net has no padding: a band of cell
        # rows needs only its windows' rows and gives those cells exactly); the small ones share
        # one call on a canvas (on a level of a few thousand pixels the call's fixed cost
        # exceeds its arithmetic).
        small = [k for k, level in enumerate(levels) if min(level.shape[1:]) <= _TILED_LEVEL_SIDE]
        cell_rows = [_windows(level.shape[1] + 2 * pad_y) for level, (_, pad_y) in zip(levels, borders)]
        units: list[tuple[list[int], tuple[int, int] | None]] = [
            ([k], band)
            for k in range(len(levels)) if k not in small
            for band in _bands(cell_rows[k], self.threads)
        ] + ([(small, None)] if small else [])

        def unit_boxes(unit: tuple[list[int], tuple[int, int] | None]) -> list[np.ndarray]:
            """The unit's cells above the threshold as boxes, per level (before NMS)."""
            members, band = unit
            if band is None:
                first = 0
                canvas, origins = _tiled([levels[k] for k in members], [borders[k] for k in members])
            else:
                first, origins = band[0], [(0, 0)]
                canvas = _band_canvas(levels[members[0]], borders[members[0]], 2 * first,
                                      2 * (band[1] - 1) + 12)
            out = pnet(canvas)
            found = []
            for k, (top, left) in zip(members, origins):
                pad_x, pad_y = borders[k]
                rows = cell_rows[k] if band is None else band[1] - first
                cols = _windows(levels[k].shape[2] + 2 * pad_x)
                cells = np.s_[top // 2 : top // 2 + rows, left // 2 : left // 2 + cols]
                prob = out["prob"][0, 1][cells]
                if prob.size == 0 or prob.max() < self.thresholds[0]:
                    found.append(np.zeros((0, 9), np.float32))
                    continue
                found.append(_cells_to_boxes(
                    out["reg"][0][(slice(None), *cells)], prob, scales[k], self.thresholds[0],
                    (pad_x, pad_y - 2 * first),  # the band's first row is the level's row 2 * first
                ))
            return found

        def work(unit: tuple[list[int], tuple[int, int] | None]) -> int:
            members, band = unit
            pixels = sum(levels[k].size for k in members)
            if band is None:
                return pixels
            return pixels * (band[1] - band[0]) // cell_rows[members[0]]

        # The threads take the units largest first; each level's bands are joined in row order
        # (the cells' order of one call), then NMS per level.
        units.sort(key=lambda unit: -work(unit))
        parts: dict[int, list[tuple[int, np.ndarray]]] = {k: [] for k in range(len(levels))}
        for (members, band), found in zip(units, run_in_parallel(self.threads, unit_boxes, units)):
            for k, boxes in zip(members, found):
                parts[k].append((0 if band is None else band[0], boxes))
        kept = []
        for k in range(len(levels)):
            boxes = np.concatenate([boxes for _, boxes in sorted(parts[k], key=lambda p: p[0])])
            if len(boxes):
                boxes = boxes[_nms_exclusive(boxes[:, :4], boxes[:, 4], self.nms_thresholds[0])]
            kept.append(boxes)
        boxes = np.concatenate(kept)
        if not len(boxes):
            return np.zeros((0, 5), np.float32)
        boxes = boxes[_nms_exclusive(boxes[:, :4], boxes[:, 4], self.nms_thresholds[1])]
        size = boxes[:, 2:4] - boxes[:, 0:2]  # facenet-pytorch regresses P-net boxes without +1
        corners = boxes[:, :4] + boxes[:, 5:9] * np.concatenate([size, size], axis=1)
        return _square(np.concatenate([corners, boxes[:, 4:5]], axis=1))

    def _refine(self, image: _Source, boxes: np.ndarray, rnet: Runner) -> np.ndarray:
        """R-net stage: squared boxes [K, 5]."""
        crops, boxes = _crops(image, boxes, 24, self.threads)
        if len(boxes) == 0:
            return np.zeros((0, 5), np.float32)
        out = _in_chunks(rnet, crops, self.threads)
        score = out["prob"][:, 1]
        passed = score > self.thresholds[1]
        boxes = np.concatenate([boxes[passed, :4], score[passed, None]], axis=1)
        offsets = out["reg"][passed]
        keep = _nms_exclusive(boxes[:, :4], boxes[:, 4], self.nms_thresholds[1])
        return _square(_regress(boxes[keep], offsets[keep]))

    def _output(
        self, image: _Source, boxes: np.ndarray, onet: Runner, large_onet: Runner
    ) -> _Faces:
        """O-net stage: the faces kept, their landmarks not yet placed (``large_onet`` on the
        candidates of at least :data:`CLOSE_UP_MIN_FACE` of the image's shorter side)."""
        crops, boxes = _crops(image, boxes, 48, self.threads)
        if len(boxes) == 0:
            return _Faces.none()
        large = boxes[:, 2] - boxes[:, 0] >= CLOSE_UP_MIN_FACE * min(image.pixels.shape[:2])
        out = _in_chunks_split(crops, large, onet, large_onet, self.threads)
        score = out["prob"][:, 1]
        passed = np.flatnonzero(score > self.thresholds[2])
        regressed = _regress(
            np.concatenate([boxes[passed, :4], score[passed, None]], axis=1), out["reg"][passed]
        )
        keep = nms(regressed[:, :4], regressed[:, 4], self.nms_thresholds[2], mode="min")
        kept = passed[keep]
        return _Faces(regressed[keep], boxes[kept, :4], crops[kept], out["landmarks"][kept])

    def _with_landmarks(self, faces: _Faces) -> Detections:
        """The detections of ``faces``, with the landmark net's points where the detector has
        one (run on the final faces only: it costs per face, not per O-net box)."""
        if len(faces.found) == 0:
            return _empty()
        lnet = self._nets[3] if len(self._nets) > 3 else None
        side = faces.boxes[:, 2:4] - faces.boxes[:, 0:2] + 1
        if lnet and self.mirror_landmarks:
            points = _landmarks_with_mirror(lnet, faces.crops, side[:, :1])
        elif lnet:
            points = _in_chunks(lnet, faces.crops, self.threads)["landmarks"]
        else:
            points = faces.points
        # landmarks = x1..x5, y1..y5 as fractions of the box; -1 as in facenet-pytorch.
        xs = faces.boxes[:, 0:1] + side[:, 0:1] * points[:, 0:5] - 1
        ys = faces.boxes[:, 1:2] + side[:, 1:2] * points[:, 5:10] - 1
        boxes = faces.found[:, :4]
        if self.calibrated_boxes:
            boxes = redraw(boxes, REFERENCE, OUTPUT_CONVENTION)
        return Detections(
            np.ascontiguousarray(boxes, np.float32),
            np.ascontiguousarray(faces.found[:, 4], np.float32),
            np.ascontiguousarray(np.stack([xs, ys], axis=2), np.float32),
        )


def detect_faces(
    image: np.ndarray,
    *,
    min_face_size: float = 20,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    backend: str = "native",
    models: Sequence[PathLike] | None = None,
    scale_factor: float = 0.709,
    nms_thresholds: Sequence[float] = (0.5, 0.7, 0.7),
    order: str = "bgr",
    onnxruntime_threads: int = 0,
    mirror_landmarks: bool = False,
    close_ups: bool = True,
    threads: int = 1,
    close_up_models: Sequence[PathLike] | None = None,
    second_look: bool = True,
    calibrated_boxes: bool | None = None,
) -> Detections:
    """Detect faces with the MTCNN cascade; see :class:`FaceDetector` for the parameters.

    Returns :class:`Detections` (boxes float32 [N, 4], scores [N], landmarks [N, 5, 2]), empty
    arrays of those shapes when no face is found.
    """
    detector = FaceDetector(
        models,
        backend=backend,
        min_face_size=min_face_size,
        thresholds=thresholds,
        scale_factor=scale_factor,
        nms_thresholds=nms_thresholds,
        order=order,
        onnxruntime_threads=onnxruntime_threads,
        mirror_landmarks=mirror_landmarks,
        close_ups=close_ups,
        threads=threads,
        close_up_models=close_up_models,
        second_look=second_look,
        calibrated_boxes=calibrated_boxes,
    )
    return detector(image)


_SCRATCH = threading.local()
#: Pyramid level k is resampled from level k - 3 (at least 2.8 times its size), the first three
#: from the image: cheaper than resampling the image every time, with the same AP50 on the
#: facemask validation split for our nets (resampling from the level before lost some).
_PYRAMID_STEP = 3
#: Black pixels added around the small pyramid levels before the P-net (see :func:`_tiled`).
_PNET_PAD = 4
#: Levels whose shorter side is at most this are padded: there a face is a large part of the
#: frame and likely cut by it; the large levels (small faces) would pay most of the padding's
#: extra P-net work.
_PADDED_LEVEL_SIDE = 160
#: The pyramid's last level has a shorter side of at least this many pixels: with the black
#: border of :data:`_PNET_PAD` the P-net's 12x12 window still fits, and holds a face up to twice
#: the image's size (tight crops of masked faces whose chin and forehead are cut off).
_SMALLEST_LEVEL_SIDE = 6
#: Levels whose shorter side is at most this share one P-net call (:func:`_tiled`).
_TILED_LEVEL_SIDE = 160
#: A black pixel after normalisation, ``(0 - 127.5) / 128``.
_BLACK = -0.99609375


def _level_buffer(size: int) -> np.ndarray:
    """``size`` float32 values on this thread's buffer for pyramid levels (reused: fresh levels
    on every call would be mapped and page-faulted every time)."""
    if size > MAX_KEPT_FLOATS:  # a very large image: not kept for the next call
        return np.empty(size, np.float32)
    buffer = getattr(_SCRATCH, "level", None)
    if buffer is None or buffer.size < size:
        buffer = _SCRATCH.level = np.empty(size, np.float32)
    return buffer[:size]


def _empty() -> Detections:
    return Detections(
        np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    )


def _level_border(height: int, width: int, border: float) -> tuple[int, int]:
    """The black pixels (left and right, top and bottom) around a pyramid level of ``height``
    x ``width`` before the P-net: ``border`` times its sides in the close-up pass, else
    :data:`_PNET_PAD` on the small levels only; never less than :data:`_PNET_PAD` where a level
    is padded at all."""
    if border > 0:
        return max(_PNET_PAD, round(border * width)), max(_PNET_PAD, round(border * height))
    if min(height, width) <= _PADDED_LEVEL_SIDE:
        return _PNET_PAD, _PNET_PAD
    return 0, 0


def _tiled(
    levels: Sequence[np.ndarray], borders: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Planar pyramid levels [3, h, w], each framed by its black border (x, y) pixels wide, on
    one black canvas [1, 3, H, W], and the (row, column) of each framed level on it.

    The nets learned black beyond the image edge (the training crops are black-padded), and a
    face cut by the edge then still fills a whole 12x12 window. The framed levels are laid in
    rows, tallest first, at even offsets (the P-net's stride), so the P-net's cells whose window
    lies inside a framed level are the cells of that level run alone."""
    framed = [(lv.shape[1] + 2 * y, lv.shape[2] + 2 * x) for lv, (x, y) in zip(levels, borders)]
    slots = [(h + h % 2, w + w % 2) for h, w in framed]
    width = max(max(w for _, w in slots), _even_ceil(np.sqrt(sum(h * w for h, w in slots))))
    origins = [(0, 0)] * len(levels)
    top = left = row_height = 0
    for k in sorted(range(len(levels)), key=lambda k: -slots[k][0]):
        if left + slots[k][1] > width:
            top, left, row_height = top + row_height, 0, 0
        origins[k] = (top, left)
        left += slots[k][1]
        row_height = max(row_height, slots[k][0])
    canvas = np.full((1, 3, top + row_height, width), _BLACK, np.float32)
    for level, (x, y), (row, col) in zip(levels, borders, origins):
        canvas[0, :, row + y : row + y + level.shape[1], col + x : col + x + level.shape[2]] = level
    return canvas, origins


def _even_ceil(value: float) -> int:
    whole = int(np.ceil(value))
    return whole + whole % 2


def _band_canvas(
    level: np.ndarray, border: tuple[int, int], start: int, stop: int
) -> np.ndarray:
    """Rows ``start:stop`` of a planar level [3, h, w] framed by its black ``border`` (x, y)
    pixels, as a P-net input [1, 3, stop - start, w + 2 x]."""
    pad_x, pad_y = border
    canvas = np.full((1, 3, stop - start, level.shape[2] + 2 * pad_x), _BLACK, np.float32)
    low, high = max(start, pad_y), min(stop, pad_y + level.shape[1])
    if high > low:
        canvas[0, :, low - start : high - start, pad_x : pad_x + level.shape[2]] = level[
            :, low - pad_y : high - pad_y
        ]
    return canvas


def _bands(rows: int, threads: int) -> list[tuple[int, int] | None]:
    """A large pyramid level's ``rows`` P-net cell rows in up to ``threads`` row bands (first,
    end) of at least :data:`_MIN_BAND_ROWS`, or ``[None]`` (the whole level in one call)."""
    count = min(threads, rows // _MIN_BAND_ROWS)
    if count < 2:
        return [None]
    edges = [round(rows * k / count) for k in range(count + 1)]
    return [(edges[k], edges[k + 1]) for k in range(count)]


def _windows(side: int) -> int:
    """P-net cells along a side of ``side`` pixels: 12-pixel windows at stride 2."""
    return max(0, (side - 12) // 2 + 1)


@dataclass(frozen=True)
class _Faces:
    """The faces one cascade pass kept, before their landmarks are placed: ``found`` [K, 5]
    regressed boxes and scores (best first), ``boxes`` [K, 4] the boxes their 48x48 ``crops``
    [K, 3, 48, 48] were cut from, ``points`` [K, 10] the O-net's landmark fractions."""

    found: np.ndarray
    boxes: np.ndarray
    crops: np.ndarray
    points: np.ndarray

    @staticmethod
    def none() -> _Faces:
        return _Faces(np.zeros((0, 5), np.float32), np.zeros((0, 4), np.float32),
                      np.zeros((0, 3, 48, 48), np.float32), np.zeros((0, 10), np.float32))


def _merged(first: _Faces, second: _Faces) -> _Faces:
    """The faces of ``first`` and those of ``second`` that overlap none of them above
    :data:`CLOSE_UP_NMS` (NMS among themselves at the same IoU), best score first."""
    if len(second.found) == 0:
        return first
    added = np.arange(len(second.found))
    if len(first.found):
        # The boxes are the cascade's own (finite): the unchecked IoU of _nms_exclusive's kind.
        added = added[_iou(second.found[:, :4], first.found[:, :4], 0.0).max(axis=1)
                      <= CLOSE_UP_NMS]
    added = added[_nms_exclusive(second.found[added, :4], second.found[added, 4], CLOSE_UP_NMS)]
    order = np.argsort(-np.concatenate([first.found[:, 4], second.found[added, 4]]), kind="stable")
    return _Faces(*(
        np.concatenate([a, b[added]])[order] for a, b in (
            (first.found, second.found), (first.boxes, second.boxes),
            (first.crops, second.crops), (first.points, second.points),
        )
    ))


def _cells_to_boxes(
    reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float,
    pad: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """P-net cells with probability >= threshold as rows x1, y1, x2, y2, score, dx1..dy2
    (``pad``: the black border (x, y) of the level the P-net ran on, taken off the
    coordinates)."""
    rows, cols = np.nonzero(prob >= threshold)
    cell = np.stack([cols, rows], axis=1).astype(np.float32) * 2 - np.array(pad, np.float32)
    top_left = np.floor((cell + 1) / np.float32(scale))
    bottom_right = np.floor((cell + 12) / np.float32(scale))
    return np.concatenate(
        [top_left, bottom_right, prob[rows, cols, None], reg[:, rows, cols].T], axis=1
    ).astype(np.float32)


#: Landmark order seen in a left-right mirrored face: the eyes and the mouth corners swap.
_MIRRORED_ORDER = [1, 0, 2, 4, 3]


def _landmarks_with_mirror(lnet: Runner, crops: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """The landmark net's fractions [N, 10] for ``crops``, averaged with its answer on the
    mirrored crops mapped back (one batch of 2N crops).

    A point at pixel ``u`` (0-based) of a crop ``S`` pixels wide is at fraction ``l = u / S``; in
    the mirrored crop it is at ``S - 1 - u``, fraction ``1 - 1/S - l`` (``sides`` [N, 1]: ``S``).
    """
    count = len(crops)
    answers = _in_chunks(lnet, np.concatenate([crops, crops[..., ::-1]]))["landmarks"]
    mirrored = answers[count:]
    back = np.concatenate(
        [1 - 1 / sides - mirrored[:, :5][:, _MIRRORED_ORDER], mirrored[:, 5:][:, _MIRRORED_ORDER]],
        axis=1,
    )
    averaged: np.ndarray = (answers[:count] + back) / 2
    return averaged


#: Crops per net call, by crop side: a net's layers run one after the other over the whole batch,
#: so a large batch leaves the caches between layers; chunks keep a layer's output in cache for
#: the next, and give ``threads`` several parts of the 10-30 O-net crops of a photo
#: (docs/detection.md gives the per-crop times).
_CHUNK = {24: 32, 48: 12}


def _in_chunks_split(
    crops: np.ndarray, chosen: np.ndarray, net: Runner, chosen_net: Runner, threads: int
) -> dict[str, np.ndarray]:
    """:func:`_in_chunks` of ``net`` on the crops, of ``chosen_net`` on those where ``chosen``
    (two nets with the same outputs), the answers in the crops' order."""
    if chosen_net is net or not chosen.any():
        return _in_chunks(net, crops, threads)
    parts = [(part, _in_chunks(runner, crops[part], threads))
             for part, runner in ((~chosen, net), (chosen, chosen_net)) if part.any()]
    out = {}
    for key, value in parts[0][1].items():
        out[key] = np.empty((len(crops), *value.shape[1:]), value.dtype)
        for part, answers in parts:
            out[key][part] = answers[key]
    return out


def _in_chunks(net: Runner, crops: np.ndarray, threads: int = 1) -> dict[str, np.ndarray]:
    """``net`` on a batch of crops, in chunks of :data:`_CHUNK` crops spread over up to ``threads``
    threads (outputs concatenated). The chunks do not depend on ``threads``: a crop's answer may
    differ in the last float bits with the size of its batch."""
    chunk = _CHUNK.get(crops.shape[-1], 32)
    if len(crops) <= chunk:
        return net(crops)
    parts = run_in_parallel(
        threads, lambda start: net(crops[start : start + chunk]), range(0, len(crops), chunk)
    )
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    side = boxes[:, 2:4] - boxes[:, 0:2] + 1
    out = boxes.copy()
    out[:, :4] += offsets * np.concatenate([side, side], axis=1)
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square of its longer side around the same centre (MTCNN's rerec)."""
    size = boxes[:, 2:4] - boxes[:, 0:2]
    longest = size.max(axis=1, keepdims=True)
    out = boxes.copy()
    out[:, 0:2] = boxes[:, 0:2] + size * np.float32(0.5) - longest * np.float32(0.5)
    out[:, 2:4] = out[:, 0:2] + longest
    return out


class _Source:
    """The uint8 image a detection runs on, resampled straight into normalised planar RGB:
    ``(pixel - 127.5) / 128`` of the area mean (area resampling is linear, so normalising first
    is the same), no float copy of the whole image."""

    def __init__(self, pixels: np.ndarray, bgr: bool) -> None:
        self.pixels = pixels
        self.bgr = bgr

    def resample(
        self, boxes: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None
    ) -> np.ndarray:
        return _core.resize_area_boxes_u8(
            self.pixels, boxes, size, self.bgr, 0.0078125, -0.99609375,
            out,
        )


def _crops(
    image: _Source, boxes: np.ndarray, side: int, threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Every box resized to side x side (area resampling) as a normalised NCHW batch, black
    where the box leaves the image (as the nets were trained), and the boxes kept (those with
    some part inside the image); ``threads`` parts of the boxes resampled at a time."""
    height, width = image.pixels.shape[:2]
    whole = np.trunc(boxes[:, :4]).astype(np.int64)
    whole[:, :2] -= 1  # MTCNN's 1-based corners
    corners = whole.copy()
    corners[:, :2] = np.maximum(corners[:, :2], 0)
    corners[:, 2] = np.minimum(corners[:, 2], width)
    corners[:, 3] = np.minimum(corners[:, 3], height)
    inside = np.nonzero((corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1]))[0]
    if len(inside) == 0:
        return np.zeros((0, 3, side, side), np.float32), boxes[inside]
    corners, whole = corners[inside], whole[inside]
    batch = np.empty((len(corners), 3, side, side), np.float32)
    bounds = np.linspace(0, len(corners), min(threads, len(corners)) + 1).astype(int)

    def resample(part: tuple[int, int]) -> None:
        a, b = part
        image.resample(np.ascontiguousarray(corners[a:b]), (side, side), batch[a:b])
        for row in a + np.flatnonzero(np.any(corners[a:b] != whole[a:b], axis=1)):
            _fill_border_crop(image, corners[row], whole[row], batch[row])

    run_in_parallel(threads, resample, list(zip(bounds[:-1], bounds[1:])))
    return batch, boxes[inside]


def _fill_border_crop(
    image: _Source, part: np.ndarray, whole: np.ndarray, out: np.ndarray
) -> None:
    """Write into ``out`` [3, S, S] the crop of the box ``whole`` whose in-image ``part`` is
    given: that part resampled to its share of the crop, black elsewhere."""
    side = out.shape[-1]
    span = (whole[2:] - whole[:2]).astype(np.float64)
    low = np.rint((part[:2] - whole[:2]) * side / span).astype(np.int64)
    high = np.rint((part[2:] - whole[:2]) * side / span).astype(np.int64)
    out[:] = _BLACK
    if np.all(high > low):
        size = (int(high[1] - low[1]), int(high[0] - low[0]))
        out[:, low[1] : high[1], low[0] : high[0]] = image.resample(part[None], size)[0]


def _close_up_model_paths(
    close_up_models: Sequence[PathLike] | None,
    models: Sequence[PathLike] | None,
    model_paths: tuple[str, ...],
) -> tuple[str, ...]:
    """The close-up pass's (P, R, O) paths: ``close_up_models`` checked, or its default."""
    if close_up_models is None:
        return model_paths[:3] if models is not None else tuple(str(p) for p in CLOSE_UP_MODELS)
    if isinstance(close_up_models, (str, bytes, os.PathLike)) or len(close_up_models) != 3:
        raise ValueError("close_up_models: expected None or three paths (pnet, rnet, onet)")
    return tuple(model_file(path, "close_up_models") for path in close_up_models)


#: The package's detector nets as ``models`` paths (P, R, O, landmark net).
_SHIPPED_PATHS = tuple(str(path) for path in DETECTOR_MODELS)


def _model_paths(models: Sequence[PathLike] | None) -> tuple[str, ...]:
    if models is None:
        if not all(path.is_file() for path in (*DETECTOR_MODELS, *CLOSE_UP_MODELS)):
            raise ModelNotFoundError(
                f"no shipped detector models in {MODEL_DIR}; pass models=(pnet, rnet, onet)"
            )
        return _SHIPPED_PATHS
    if isinstance(models, (str, bytes, os.PathLike)) or len(models) not in (3, 4):
        raise ValueError(
            "models: expected None or three paths (pnet, rnet, onet) or four "
            "(pnet, rnet, onet, lnet)"
        )
    return tuple(model_file(path, "models") for path in models)


def _load(path: str, backend: str, threads: int, outputs: tuple[str, ...]) -> Runner:
    """The net at ``path``, loaded once per (file version, backend, threads)."""
    if backend == "native":
        runner, names = cached(path, "native", _native)
    else:
        runner, names = _onnxruntime(path, threads)
    missing = [name for name in outputs if name not in names]
    if missing:
        raise ValueError(f"{path}: the net lacks the outputs {missing} (has {list(names)})")
    return runner


def _native(path: str) -> tuple[Runner, Sequence[str]]:
    net = NativeNet(path)
    if len(net.input_names) != 1:
        raise ValueError(f"{path}: expected a net with one input, got {list(net.input_names)}")
    return net, net.output_names


def _onnxruntime(path: str, threads: int) -> tuple[Runner, Sequence[str]]:
    session = onnx_session(path, threads, "models")
    if len(session.get_inputs()) != 1:
        raise ValueError(f"{path}: expected a net with one input")
    input_name = session.get_inputs()[0].name
    names = [output.name for output in session.get_outputs()]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, {input_name: x})))

    return run, names


def _triple(values: Sequence[float], name: str) -> tuple[float, float, float]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != 3:
        raise ValueError(f"{name}: expected three numbers (P-, R-, O-net), got {values!r}")
    a, b, c = (check_number(v, name, low=0.0, high=1.0) for v in values)
    return a, b, c
