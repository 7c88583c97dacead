"""The learned face-mask segmentation path (MaskNet) and the fused method.

:class:`MaskNet` runs a small depthwise-separable encoder-decoder (``models/masknet.onnx``,
model card ``models/masknet.md``) on the masksegx C++ kernels or in onnxruntime (``backend``).
It sees a square view of the face:

- ``box=None``: the whole image, resized to the net input (``S x S``, 160 for the shipped
  model; a non-square image is stretched, which the training covered);
- ``box=(x1, y1, x2, y2)`` (a face box in either convention of :mod:`masksegx.boxes`, e.g.
  from :func:`masksegx.detect_faces`): a square of side ``BOX_MARGIN`` (1.4) x the box's
  larger side around the box centre, rounded to whole pixels; parts outside the image are
  filled by replicating the border pixels. The probability map is resized back to the square
  and pasted into the image; pixels outside the square are 0.

  Box bounds: the box must overlap the image and have ``x1 < x2``, ``y1 < y2`` (ValueError
  naming ``box`` otherwise). A box partly outside the image is used as it is (a face at the
  border: clipping it to the image would shift the view off the face), except that its
  corners are clipped to the image widened by its larger side (at least 128 pixels) beyond
  each border (:func:`masksegx._validation.image_reach`): a box reaching further out is not
  of a face in this image.
  Only the image's part of the view is resampled at full size, so memory stays in proportion
  to the image whatever the box.

Resizing: area interpolation when shrinking (by more than 2x: bilinear to twice the net size,
then an exact 2x2 area step), bilinear when enlarging; the probability map is resized back
bilinearly.

:func:`segment_fused` combines the net with the spectral pipeline (:class:`FusedParams`): the
net's probability is the candidate map, blended with the spectral pipeline's fuzzy mask
membership (:func:`masksegx.segment_spectral` on the view shrunk to ``spectral_size``, weight
``spectral_weight``) and thresholded; the geometric-weighted connectivity analysis
(:mod:`masksegx.regions`) then filters its connected components by ``Mi <= p1`` and
``Po <= p2`` (eq. 22-24, ``eps`` = mean 5x5 local variance of NBRI) and by size (components
below ``min_area_share`` of the largest one are dropped), the largest component always being
kept; enclosed holes are filled. The region compensation (step 4) is not used: it is off in the
spectral pipeline's defaults too (it measured worse, see docs/method.md).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, NamedTuple, Protocol, Union

import cv2
import numpy as np

from . import color, filters, regions, spectral
from ._models import MASKNET_MODEL, OpenedNet, cached, check_backend, model_file, open_net
from ._models import MODEL_DIR as MODEL_DIR  # re-exported: masksegx.learned.MODEL_DIR
from ._validation import (
    MAX_SIDE,
    as_image,
    check_bool,
    check_int,
    check_number,
    check_odd_window,
    check_threads,
    image_reach,
    settings_or_default,
)
from .spectral import SpectralParams

PathLike = Union[str, "os.PathLike[str]"]
Box = Union[Sequence[float], np.ndarray]
#: What a net's ``view_probability`` returns: the probability over the view and the view's
#: part of the image ``(x0, y0, x1, y1)`` (exclusive ends).
ViewProbability = tuple[np.ndarray, tuple[int, int, int, int]]

#: Side of the square view around a face box, in units of the box's larger side.
BOX_MARGIN = 1.4
#: The backend of :class:`MaskNet` unless asked otherwise: the faster one on the
#: shipped net: onnxruntime's blocked-layout kernels run its small depthwise layers and first
#: convolution faster than ours (``python -m tools.speed_ratios`` times both, per net).
DEFAULT_BACKEND = "onnxruntime"

_NO_LIMIT = 1e30


def _mask_net_side(net: OpenedNet, path: str) -> int:
    """Input side of a mask net; ValueError for any other net."""
    shape = net.input_shapes[0] if len(net.input_shapes) == 1 else None
    out_shape = net.output_shapes[0] if len(net.output_shapes) == 1 else None
    if (shape is None or len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int)
            or shape[2] != shape[3] or out_shape is None or len(out_shape) != 4
            or out_shape[1] != 1):
        raise ValueError(
            f"model: {path} is not a mask net (expected one input [N, 3, S, S] and one output "
            f"[N, 1, S, S]; got inputs {list(net.input_shapes)}, "
            f"outputs {list(net.output_shapes)})"
        )
    return int(shape[2])


def _check_box(box: object, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    if isinstance(box, (str, bytes)) or not isinstance(box, (Sequence, np.ndarray)):
        raise TypeError(f"box: expected None or (x1, y1, x2, y2), got {type(box).__name__}")
    try:
        values = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"box: expected 4 numbers (x1, y1, x2, y2), got {box!r}") from None
    if values.shape != (4,) or not np.isfinite(values).all():
        raise ValueError(f"box: expected 4 finite numbers (x1, y1, x2, y2), got {box!r}")
    x1, y1, x2, y2 = (float(v) for v in values)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box: expected x1 < x2 and y1 < y2, got {values.tolist()}")
    h, w = shape
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        raise ValueError(f"box: {values.tolist()} does not overlap the {w}x{h} image")
    # Beyond the image's reach a box holds nothing more of a face in this image.
    x_min, y_min, x_max, y_max = image_reach(shape)
    return max(x1, x_min), max(y1, y_min), min(x2, x_max), min(y2, y_max)


def _check_threshold(threshold: object) -> float:
    return check_number(threshold, "threshold", low=0.0, high=1.0)


def view_square(box: tuple[float, float, float, float], margin: float = BOX_MARGIN) -> tuple[int, int, int]:
    """The square view ``(x0, y0, side)`` (integer pixels) the net sees for a face box
    (``x1 < x2``, ``y1 < y2``, finite; ``margin`` > 0)."""
    margin = check_number(margin, "margin", low=0.0, low_open=True, high=math.inf, high_open=True)
    x1, y1, x2, y2 = box
    side = max(1, int(round(margin * max(x2 - x1, y2 - y1))))
    x0 = int(round((x1 + x2) / 2 - side / 2))
    y0 = int(round((y1 + y2) / 2 - side / 2))
    return x0, y0, side


def _unit(prob: np.ndarray) -> np.ndarray:
    """Cap at 1 (bilinear/area resampling of a sigmoid output can overshoot 1 by rounding;
    it cannot go below 0): a contiguous float32 copy."""
    return cv2.threshold(np.ascontiguousarray(prob), 1.0, 1.0, cv2.THRESH_TRUNC)[1]


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area interpolation when shrinking, bilinear when enlarging; size = (width, height).

    Shrinking by more than 2x goes bilinearly to twice the size first, then by area (an exact
    2x2 average): OpenCV's area resampling is much faster for integer ratios, and the result
    differs from one area step by a few grey levels."""
    width, height = size
    if width >= image.shape[1] and height >= image.shape[0]:
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if image.shape[1] > 2 * width and image.shape[0] > 2 * height:
        image = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class _View(NamedTuple):
    """Where a net view lies: the square ``(x0, y0, side)`` and its part of the image
    ``(ix0, iy0, ix1, iy1)``; ``side`` 0 for the whole image (stretched to the net input)."""

    x0: int
    y0: int
    side: int
    inside: tuple[int, int, int, int]


class MaskNet:
    """The learned face-mask segmentation net.

    Parameters
    ----------
    model : None for the shipped ``models/masknet.onnx``, or the path of an ONNX net with one
        input ``[N, 3, S, S]`` (BGR, 0..255 float32) and one output ``[N, 1, S, S]``
        (probability); the Table 4 U-Net baseline has the same interface.
    threads : threads per call (>= 1; 1 = single-threaded, the timed setting): onnxruntime's
        intra-op threads, or on the native backend the batch split into that many parts run at
        once.
    backend : ``"native"`` (the masksegx C++ kernels) or ``"onnxruntime"`` (the reference);
        both give the same probabilities to float rounding.

    Notes
    -----
    A missing model file raises :class:`masksegx.detect.ModelNotFoundError` (a
    FileNotFoundError and ValueError); an unreadable or wrong-shaped one ValueError. Nets are
    shared by instances with the same file, backend and threads; calls are thread-safe.
    """

    def __init__(
        self, model: PathLike | None = None, *, threads: int = 1, backend: str = DEFAULT_BACKEND
    ) -> None:
        self.threads = check_threads(threads)
        self.backend = check_backend(backend)
        self.model_path = model_file(model, shipped=MASKNET_MODEL)
        self._net = open_net(self.model_path, self.backend, self.threads)
        self.input_size = _mask_net_side(self._net, self.model_path)

    def __repr__(self) -> str:
        return (f"MaskNet({self.model_path!r}, threads={self.threads}, backend={self.backend!r}, "
                f"input_size={self.input_size})")

    def _run(self, views: np.ndarray) -> np.ndarray:
        """Probabilities [N, S, S] of uint8 views [N, S, S, 3]: one net call for the batch."""
        x = np.ascontiguousarray(views.transpose(0, 3, 1, 2), dtype=np.float32)
        prob: np.ndarray = self._net.run(x)[:, 0]
        return prob

    def view_probability(self, image: np.ndarray, box: Box | None = None) -> ViewProbability:
        """The probability inside the view only: ``(prob, (x0, y0, x1, y1))`` with ``prob``
        float32 of shape ``(y1 - y0, x1 - x0)`` covering the image pixels ``[y0:y1, x0:x1]``
        (the whole image for ``box=None``). :meth:`probability` pastes it into a full map."""
        return self._view_probability(as_image(image), box)

    def _view_probability(self, image: np.ndarray, box: Box | None = None) -> ViewProbability:
        """:meth:`view_probability` of an image already validated by :func:`as_image`."""
        return self._view_probabilities(image, [box])[0]

    def _view_probabilities(
        self, image: np.ndarray, boxes: Sequence[Box | None]
    ) -> list[ViewProbability]:
        """:meth:`view_probability` of several boxes of one image (validated by
        :func:`as_image`), every view cropped once and all run through the net in one batch."""
        if not len(boxes):
            return []
        prepared = [self._prepare_view(image, box) for box in boxes]
        probs = self._run(np.stack([pixels for pixels, _ in prepared]))
        return [self._place(image, prob, view) for prob, (_, view) in zip(probs, prepared)]

    def _prepare_view(self, image: np.ndarray, box: Box | None) -> tuple[np.ndarray, _View]:
        """The net's uint8 input ``[S, S, 3]`` for ``box`` and where that view lies."""
        h, w = image.shape[:2]
        s = self.input_size
        if box is None:
            return _resize(image, (s, s)), _View(0, 0, 0, (0, 0, w, h))
        x0, y0, side = view_square(_check_box(box, (h, w)))
        # The part of the square inside the image.
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
        if side > 2 * s:
            # One bilinear warp to twice the net size (replicating the border outside the
            # image, no padded copy of the large view), then an exact 2x2 area step.
            k = 2 * s / side
            matrix = np.array([[k, 0.0, 0.5 * k - 0.5 - k * x0], [0.0, k, 0.5 * k - 0.5 - k * y0]])
            view = cv2.warpAffine(image, matrix, (2 * s, 2 * s), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            view = cv2.resize(view, (s, s), interpolation=cv2.INTER_AREA)
        else:
            view = image[iy0:iy1, ix0:ix1]
            pads = (iy0 - y0, y0 + side - iy1, ix0 - x0, x0 + side - ix1)
            if any(pads):  # replicate the border pixels outside the image
                view = cv2.copyMakeBorder(view, *pads, cv2.BORDER_REPLICATE)
            view = _resize(view, (s, s))
        return view, _View(x0, y0, side, (ix0, iy0, ix1, iy1))

    def _place(self, image: np.ndarray, prob: np.ndarray, view: _View) -> ViewProbability:
        """The net's probability ``[S, S]`` resampled over the view's part of the image."""
        h, w = image.shape[:2]
        s = self.input_size
        x0, y0, side = view.x0, view.y0, view.side
        ix0, iy0, ix1, iy1 = view.inside
        if side == 0:
            return _unit(_resize(prob, (w, h))), view.inside
        if side > 2 * max(h, w, s):
            # A square much larger than the image: resample the net's output over the image's
            # part only (bilinear, as the resize below), never the whole square.
            k = s / side
            matrix = np.array([[k, 0.0, k * (ix0 - x0 + 0.5) - 0.5],
                               [0.0, k, k * (iy0 - y0 + 0.5) - 0.5]])
            prob = cv2.warpAffine(prob, matrix, (ix1 - ix0, iy1 - iy0),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REPLICATE)
        else:
            prob = _resize(prob, (side, side))
            prob = prob[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
        return _unit(prob), view.inside

    def probability(self, image: np.ndarray, box: Box | None = None) -> np.ndarray:
        """float32 HxW in [0, 1]: probability that a pixel is the worn face mask.

        ``image``: uint8 HxWx3 BGR. ``box``: None (the whole image is the view) or a face box
        ``(x1, y1, x2, y2)`` in pixels (floats allowed; it must overlap the image). Pixels outside
        the box's view square are 0.
        """
        prob, (x0, y0, x1, y1) = self.view_probability(image, box)
        if box is None:
            return prob
        out = np.zeros(image.shape[:2], np.float32)
        out[y0:y1, x0:x1] = prob
        return out

    def segment(self, image: np.ndarray, box: Box | None = None, threshold: float = 0.5) -> np.ndarray:
        """bool HxW: ``probability(image, box) > threshold``."""
        return self._segment(as_image(image), box, threshold)

    def _segment(self, image: np.ndarray, box: Box | None, threshold: float) -> np.ndarray:
        """:meth:`segment` of an image already validated by :func:`as_image`."""
        threshold = _check_threshold(threshold)
        return _threshold_view(image.shape, self._view_probability(image, box), threshold)


def _threshold_view(shape: tuple[int, ...], view: ViewProbability, threshold: float) -> np.ndarray:
    """bool image-sized mask: the view's probability above ``threshold``, False elsewhere."""
    prob, (x0, y0, x1, y1) = view
    out = np.zeros(shape[:2], bool)
    out[y0:y1, x0:x1] = prob > threshold
    return out


class _ViewModel(Protocol):
    """What :func:`segment_fused` needs of a model: a MaskNet, or a stand-in with its method."""

    def view_probability(self, image: np.ndarray, box: Box | None = None) -> ViewProbability: ...


def _mask_net(model: object) -> MaskNet:
    if isinstance(model, MaskNet):
        return model
    return cached(model_file(model, shipped=MASKNET_MODEL), "MaskNet", MaskNet)


def _view_probability_of(
    model: None | PathLike | MaskNet | _ViewModel,
) -> Callable[[np.ndarray, Box | None], ViewProbability]:
    """The ``view_probability`` of a model: a MaskNet's own, trusting its image, or a stand-in's."""
    if isinstance(model, MaskNet):
        return model._view_probability
    if model is not None and hasattr(model, "view_probability"):  # a stand-in (tools/eval_learned.py)
        return model.view_probability
    return _mask_net(model)._view_probability


def segment_learned(image: np.ndarray, box: Box | None = None, *, threshold: float = 0.5,
                    model: None | PathLike | MaskNet = None) -> np.ndarray:
    """bool HxW worn-mask segmentation by the learned net (see :class:`MaskNet`).

    ``model``: None (shipped net), a path, or a :class:`MaskNet` to reuse.
    """
    return _mask_net(model).segment(image, box, threshold)


@dataclass(frozen=True)
class FusedParams:
    """Settings of :func:`segment_fused`.

    Defaults: the best mean whole-image mIoU on the validation sets (real_dev_val, ffhq_val) in
    the grid of ``python -m tools.eval_learned --tune-fused`` (threshold 0.4/0.5/0.6, spectral_weight
    0/0.2/0.3, p1 8/inf, p2 0.5/inf, min_area_share 0/0.1/0.3), ties broken towards the
    spectral pipeline's p1 and the cheaper p2 = inf. See ``models/masknet.md``."""

    threshold: float = 0.5
    """Candidates: fused probability above this."""
    spectral_weight: float = 0.3
    """Weight of the spectral pipeline's mask membership in the candidate map (0 = the net
    alone, faster; > 0 runs the spectral clustering on the shrunk view)."""
    spectral_size: int = 96
    """The spectral clustering runs on the view shrunk to at most this side (0 = full size);
    its membership map is resized back. 96 px scored as full size did on validation, for a
    fraction of the time."""
    p1: float = 8.0
    """Largest Mi = K^2/area of a kept component (as :class:`masksegx.SpectralParams`)."""
    p2: float = float("inf")
    """Largest Po = (X_max/area) * eps of a kept component (``inf``, the default, skips the
    test and the NBRI variance it needs: 0.5 as in the spectral pipeline scored the same on
    validation)."""
    min_area_share: float = 0.1
    """Components smaller than this share of the largest one are dropped."""
    variance_window: int = 5
    fill_holes: bool = True

    def __post_init__(self) -> None:
        _check_threshold(self.threshold)
        check_number(self.spectral_weight, "spectral_weight", low=0.0, high=1.0)
        check_number(self.min_area_share, "min_area_share", low=0.0, high=1.0)
        for name in ("p1", "p2"):
            check_number(getattr(self, name), name, low=0.0, low_open=True)  # inf = no test
        if 0 < check_int(self.spectral_size, "spectral_size", low=0, high=MAX_SIDE) < 16:
            raise ValueError(f"spectral_size: expected 0 or at least 16, got {self.spectral_size}")
        check_odd_window(self.variance_window, "variance_window")
        check_bool(self.fill_holes, "fill_holes")


def segment_fused(image: np.ndarray, box: Box | None = None, *, params: FusedParams | None = None,
                  model: None | PathLike | MaskNet | _ViewModel = None) -> np.ndarray:
    """bool HxW worn-mask segmentation: the net's probability cleaned by the spectral pipeline's
    connectivity analysis (module docstring). Same ``box`` convention as :class:`MaskNet`."""
    params = settings_or_default(params, FusedParams, "params")
    return _segment_fused(as_image(image), box, params, _view_probability_of(model))


def _segment_fused(
    image: np.ndarray,
    box: Box | None,
    params: FusedParams,
    view_probability: Callable[[np.ndarray, Box | None], ViewProbability],
) -> np.ndarray:
    """:func:`segment_fused` of an image already validated by :func:`as_image`, with the net's
    ``view_probability`` method."""
    candidate, (x0, y0, x1, y1) = view_probability(image, box)
    crop = image[y0:y1, x0:x1]
    h, w = crop.shape[:2]
    if params.spectral_weight > 0 and min(h, w) >= 8:
        scale = params.spectral_size / max(h, w) if params.spectral_size else 1.0
        small = _resize(crop, (max(8, round(w * scale)), max(8, round(h * scale)))) if scale < 1 else crop
        small = np.ascontiguousarray(small)
        membership = spectral._segment_spectral(small, None, SpectralParams()).membership
        if membership.shape != (h, w):
            membership = cv2.resize(membership, (w, h), interpolation=cv2.INTER_LINEAR)
        candidate = cv2.addWeighted(candidate, 1 - params.spectral_weight, membership,
                                    params.spectral_weight, 0.0)
    candidates = candidate > params.threshold
    mask = np.zeros(image.shape[:2], bool)
    if not candidates.any():
        return mask
    # eps (NBRI texture) only matters for the Po test: skip its cost when p2 is infinite.
    variance = None
    if np.isfinite(params.p2):
        nbri = color._spectral_maps(np.ascontiguousarray(crop), with_hsi=False).nbri
        variance = filters._local_variance(nbri, params.variance_window)
    comps = regions._analyze(candidates, variance)
    # regions.geometric_filter wants finite thresholds: inf (= no test) becomes a huge one.
    kept = regions.geometric_filter(comps, min(params.p1, _NO_LIMIT), min(params.p2, _NO_LIMIT))
    kept &= comps.area >= params.min_area_share * comps.area.max()
    # The largest component always stays: the shape tests prune fragments beside the net's
    # main answer, never the answer itself (a mask pulled under the chin is a thin band with
    # Mi > p1; with p1 = 8 it vanished on one ffhq_test image, iwm_07049).
    kept[int(np.argmax(comps.area))] = True
    crop_mask = candidates if kept.all() else comps.select(kept)
    if params.fill_holes:
        crop_mask = regions._fill_holes(crop_mask)
    mask[y0:y1, x0:x1] = crop_mask
    return mask
