"""Face attributes: gender and mask coverage from one multi-attribute network (paper §2).

The network (a trimmed, depthwise-separable VGG-11; see ``models/attributes.md``) looks at the
face aligned from its 5 landmarks (:func:`masksegx.align.align_face`) and ends in one softmax
over the 22 joint classes {female, male} x {coverage level 0..10}: output ``k`` (0-based) is
female with level ``k`` for ``k < 11`` and male with level ``k - 11`` otherwise. Marginals, exactly
as the paper's eq. 11-13 (1-based there):

- ``P(female) = sum(T[0:11])``, ``P(male) = sum(T[11:22])``;
- ``P(level l) = T[l] + T[l + 11]`` for ``l = 0..10``;
- expected level ``E = sum_l l * P(level l)``.

The coverage level is the share of the lower face (below the eye line, inside the face box)
covered by the worn mask, in tenths (:func:`masksegx.synthesis.coverage_level`).

The wearing state comes from the network's wearing head where the file has one: an output
``wearing`` [N, 3], P(none, incorrect, correct), from a branch on the trunk's features
trained on real photos' crops (``masksegx.training.train_wearing``); the state is its most
probable class. A file without that output falls back to the expected level and two
thresholds ``a < b`` stored in the model file (chosen on training data, see the model card):

- ``"none"`` if ``E < a``, ``"correct"`` if ``E >= b``, ``"incorrect"`` otherwise.

A correctly worn mask covers nose and mouth but not the cheeks under the eyes, so it reaches
levels around 5-7; one pulled under the nose or chin, 1-4; but a mask under the nose covers
about as much of the lower face as one worn correctly, which the head tells apart better.

Likewise the gender comes from the gender head where the file has one: an output ``gender``
[N, 2], P(female, male), from a branch trained on faces of several sources with and without
synthetic masks (``masksegx.training.train_gender``); without it, from the joint marginals.
The shipped file has no gender head (measured and not shipped: ``docs/attributes.md``).

Inference runs on the masksegx C++ kernels or in onnxruntime (``backend``); torch is never
imported here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import cv2
import numpy as np

from ._models import ATTRIBUTES_MODEL, OpenedNet, cached, check_backend, model_file, open_net
from ._validation import (
    as_image,
    as_numeric_points,
    check_bool,
    check_finite,
    check_int,
    check_near_image,
    check_number,
    check_threads,
)
from .align import MAX_CROP_SIZE, MIN_CROP_SIZE, _align_face

PathLike = Union[str, "os.PathLike[str]"]

#: Coverage levels 0..10.
N_LEVELS = 11
#: Joint classes: {female, male} x levels.
N_JOINT = 2 * N_LEVELS
GENDERS = ("female", "male")
WEARING_STATES = ("none", "incorrect", "correct")
#: Name of the optional wearing-head output [N, 3] (P of each of :data:`WEARING_STATES`).
WEARING_OUTPUT = "wearing"
#: Name of the gender head's output [N, 2] = P(female, male), where a file has one.
GENDER_OUTPUT = "gender"
#: The shipped model.
DEFAULT_MODEL = ATTRIBUTES_MODEL
#: The backend of :class:`AttributePredictor` unless asked otherwise: the faster one on the
#: shipped net: onnxruntime's blocked-layout kernels run its small depthwise layers and first
#: convolution faster than ours (``python -m tools.speed_ratios`` times both, per net).
DEFAULT_BACKEND = "onnxruntime"
#: ONNX metadata key holding the preprocessing settings and the wearing thresholds (JSON).
METADATA_KEY = "masksegx_attributes"
#: Settings assumed when a model file carries no metadata.
DEFAULT_SETTINGS = {
    "crop_size": 80,
    "input_size": 64,
    "padding": 0.2,
    "mean": 127.5,
    "scale": 1.0 / 128.0,
    "channels": "bgr",
    "wearing_thresholds": [0.5, 4.5],
}


@dataclass(frozen=True)
class FaceAttributes:
    """Attributes of one face.

    gender : ``"female"`` or ``"male"`` (the larger probability; ties go to ``"female"``).
    gender_prob : P(male) in [0, 1]: the gender head's where the model has one, else the joint
        softmax's marginal (eq. 12).
    coverage_probs : float32 (11,) P(level l), l = 0..10, summing to 1.
    coverage : expected coverage level in [0, 10].
    wearing : ``"none"``, ``"incorrect"`` or ``"correct"``: the wearing head's most probable
        state, or the thresholds' rule on ``coverage`` without a head (module docstring).
    joint_probs : float32 (22,) the network's softmax (female levels 0..10, then male).
    wearing_probs : float32 (3,) the wearing head's P(none, incorrect, correct), or None when
        the model has no wearing head.
    """

    gender: str
    gender_prob: float
    coverage_probs: np.ndarray
    coverage: float
    wearing: str
    joint_probs: np.ndarray
    wearing_probs: np.ndarray | None = None


def gender_marginals(joint: np.ndarray) -> np.ndarray:
    """P(female), P(male) (eq. 11-12) of joint probabilities [..., 22] -> [..., 2]."""
    joint = _as_joint(joint)
    return np.stack([joint[..., :N_LEVELS].sum(-1), joint[..., N_LEVELS:].sum(-1)], axis=-1)


def level_marginals(joint: np.ndarray) -> np.ndarray:
    """P(level l) = T_l + T_{l+11} (eq. 13) of joint probabilities [..., 22] -> [..., 11]."""
    joint = _as_joint(joint)
    levels: np.ndarray = joint[..., :N_LEVELS] + joint[..., N_LEVELS:]
    return levels


def expected_level(level_probs: np.ndarray) -> np.ndarray:
    """Expected coverage level ``sum_l l P(l)`` of level distributions [..., 11]."""
    level_probs = np.asarray(level_probs)
    if level_probs.shape[-1:] != (N_LEVELS,):
        raise ValueError(f"level_probs: expected last axis {N_LEVELS}, got {level_probs.shape}")
    return level_probs @ np.arange(N_LEVELS, dtype=level_probs.dtype)


def wearing_state(coverage: float, thresholds: Sequence[float]) -> str:
    """``"none"`` if ``coverage < a``, ``"correct"`` if ``coverage >= b``, else ``"incorrect"``."""
    low, high = _thresholds(thresholds)
    if coverage < low:
        return "none"
    return "correct" if coverage >= high else "incorrect"


class AttributePredictor:
    """The multi-attribute network; call it on faces.

    Parameters
    ----------
    model : path of an attribute ``.onnx`` file, or None for the shipped
        ``models/attributes.onnx``.
    threads : threads per call (>= 1; 1 = single-threaded, the benchmark setting): onnxruntime's
        intra-op threads, or on the native backend the batch split into that many parts run at
        once.
    backend : ``"native"`` (the masksegx C++ kernels, :mod:`masksegx._executor`) or
        ``"onnxruntime"`` (the reference); both give the same probabilities to float rounding.
    mirror : average the joint probabilities of each aligned crop and its mirror image (gender
        and coverage do not change under a horizontal flip; costs a second pass of the net).
        Files exported with ``mirror_average`` in their metadata do this inside the graph and
        always average; for the others it is done here unless ``mirror=False``.

    Notes
    -----
    ``predictor(image, landmarks)`` takes a uint8 BGR image [H, W, 3] and the 5 landmarks of one
    face [5, 2] or of several [N, 5, 2] (left eye, right eye, nose tip, left and right mouth corner,
    pixels; as :class:`masksegx.Detections` gives them) and returns one :class:`FaceAttributes`
    per face, in order (all faces go through the network in one batch). Landmarks may lie
    outside the image (a face at the border) but not more than the image's larger side (at
    least 128 pixels) beyond its border: such points belong to no face in it (ValueError naming
    ``landmarks``).

    Raises
    ------
    ModelNotFoundError
        A missing model (a FileNotFoundError and ValueError).
    ValueError
        A file onnxruntime cannot load, whose first output is not [N, 22], or whose ``wearing``
        output is not [N, 3], or whose ``gender`` output is not [N, 2].
    """

    def __init__(
        self,
        model: PathLike | None = None,
        *,
        threads: int = 1,
        mirror: bool = True,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        self.threads = check_threads(threads)
        self.backend = check_backend(backend)
        self.model_path = model_file(model, shipped=ATTRIBUTES_MODEL)
        self._net = open_net(self.model_path, self.backend, self.threads)
        mirror = check_bool(mirror, "mirror")
        self.settings = _attribute_net_settings(self._net, self.model_path)
        self.crop_size = int(self.settings["crop_size"])
        self.input_size = int(self.settings["input_size"])
        self.padding = float(self.settings["padding"])
        self.wearing_thresholds = _thresholds(self.settings["wearing_thresholds"])
        #: Whether the file has the wearing head (else the thresholds give the wearing state).
        self.has_wearing_head = _has_head(self._net, self.model_path, WEARING_OUTPUT,
                                          len(WEARING_STATES))
        #: Whether the file has the gender head (else the joint marginals give the gender).
        self.has_gender_head = _has_head(self._net, self.model_path, GENDER_OUTPUT, len(GENDERS))
        #: Whether this object runs the mirrored crops (False when the graph does it itself).
        self.mirror_here = mirror and not self.settings.get("mirror_average", False)

    def preprocess(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Network input float32 [N, 3, S, S] for landmarks [5, 2] / [N, 5, 2]."""
        image = as_image(image)
        return self._preprocess(image, _as_landmark_batch(landmarks, image.shape))

    def _preprocess(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """:meth:`preprocess` of an image already validated by :func:`as_image` and landmarks
        [N, 5, 2] by :func:`_as_landmark_batch`."""
        batch = np.empty((len(landmarks), 3, self.input_size, self.input_size), np.float32)
        for i, points in enumerate(landmarks):
            try:
                crop, _ = _align_face(image, points, self.crop_size, self.padding)
            except ValueError as error:  # degenerate points (all in one place)
                raise ValueError(f"landmarks: face {i}: {error}") from None
            batch[i] = network_input(crop, self.settings)
        return batch

    def joint_probs(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The network's joint probabilities float32 [N, 22] for landmarks [5, 2] / [N, 5, 2]."""
        image = as_image(image)
        return self._joint_probs(image, _as_landmark_batch(landmarks, image.shape))

    def _joint_probs(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """:meth:`joint_probs` of an image already validated by :func:`as_image` and finite
        landmarks [N, 5, 2]."""
        return self._outputs(image, landmarks)[0]

    def _outputs(
        self, image: np.ndarray, landmarks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The joint probabilities [N, 22], the wearing head's [N, 3] and the gender head's
        [N, 2] (None for a head the file lacks) of an image already validated by
        :func:`as_image` and finite landmarks [N, 5, 2]."""
        heads = ((self.has_wearing_head, WEARING_OUTPUT, len(WEARING_STATES)),
                 (self.has_gender_head, GENDER_OUTPUT, len(GENDERS)))
        if len(landmarks) == 0:
            wearing, gender = (np.zeros((0, classes), np.float32) if present else None
                               for present, _, classes in heads)
            return np.zeros((0, N_JOINT), np.float32), wearing, gender
        batch = self._preprocess(image, landmarks)
        if self.mirror_here:
            batch = np.ascontiguousarray(np.concatenate([batch, batch[:, :, :, ::-1]]))
        if not (self.has_wearing_head or self.has_gender_head):
            return self._per_face(self._net.run(batch), len(landmarks)), None, None
        outputs = self._net.run_all(batch)
        wearing, gender = (
            self._per_face(outputs[self._net.output_names.index(name)], len(landmarks))
            if present else None
            for present, name, _ in heads)
        return self._per_face(outputs[0], len(landmarks)), wearing, gender

    def _per_face(self, out: np.ndarray, count: int) -> np.ndarray:
        """A net output per face: the mean over each crop and its mirror when both ran."""
        if self.mirror_here:
            out = 0.5 * (out[:count] + out[count:])
        return np.ascontiguousarray(out, dtype=np.float32)

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> list[FaceAttributes]:
        image = as_image(image)
        return self._predict(image, _as_landmark_batch(landmarks, image.shape))

    def _predict(self, image: np.ndarray, landmarks: np.ndarray) -> list[FaceAttributes]:
        """The call of an image already validated by :func:`as_image` and finite landmarks
        [N, 5, 2]."""
        joint, wearing, gender = self._outputs(image, landmarks)
        return [self.attributes(row, None if wearing is None else wearing[k],
                                None if gender is None else gender[k])
                for k, row in enumerate(joint)]

    def attributes(
        self,
        joint: np.ndarray,
        wearing_probs: np.ndarray | None = None,
        gender_probs: np.ndarray | None = None,
    ) -> FaceAttributes:
        """:class:`FaceAttributes` of one face's joint probabilities (22,) and, where the model
        has the heads, its wearing probabilities (3,) and gender probabilities (2,); without
        them the wearing state follows the thresholds' rule and the gender the joint
        marginals."""
        joint = _as_joint(joint).astype(np.float32)
        if gender_probs is None:
            p_female, p_male = gender_marginals(joint)
        else:
            p_female, p_male = _as_head_probs(gender_probs, "gender_probs", len(GENDERS))
        levels = level_marginals(joint)
        coverage = float(expected_level(levels.astype(np.float64)))
        if wearing_probs is None:
            wearing = wearing_state(coverage, self.wearing_thresholds)
        else:
            wearing_probs = _as_head_probs(wearing_probs, "wearing_probs", len(WEARING_STATES))
            wearing = WEARING_STATES[int(np.argmax(wearing_probs))]
        return FaceAttributes(
            gender=GENDERS[int(p_male > p_female)],
            gender_prob=float(p_male),
            coverage_probs=levels,
            coverage=coverage,
            wearing=wearing,
            joint_probs=joint,
            wearing_probs=wearing_probs,
        )


def network_input(crop: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """An aligned uint8 BGR face crop (``settings["crop_size"]`` square, as
    :func:`~masksegx.align.align_face` cuts it) as the net's float32 [3, S, S] input, S =
    ``settings["input_size"]`` (``settings`` as :attr:`AttributePredictor.settings`)."""
    size = int(settings["input_size"])
    if crop.shape[:2] != (size, size):
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    if settings["channels"] == "rgb":
        crop = crop[:, :, ::-1]
    mean, scale = np.float32(settings["mean"]), np.float32(settings["scale"])
    return ((crop.astype(np.float32) - mean) * scale).transpose(2, 0, 1)


def predict_attributes(
    image: np.ndarray, landmarks: np.ndarray, *, model: PathLike | None = None
) -> FaceAttributes | list[FaceAttributes]:
    """Attributes of the face(s) with ``landmarks`` in ``image`` (uint8 BGR [H, W, 3]).

    ``landmarks`` [5, 2] returns one :class:`FaceAttributes`, [N, 5, 2] a list of N (bounds as
    for :class:`AttributePredictor`). The model
    (default: the shipped one) is loaded once and reused (single-threaded session).
    """
    predictor = cached(model_file(model, shipped=ATTRIBUTES_MODEL), "AttributePredictor", AttributePredictor)
    points = _as_landmark_array(landmarks)
    result = predictor(image, points)
    return result[0] if points.ndim == 2 else result


def _as_landmark_array(landmarks: object) -> np.ndarray:
    landmarks = as_numeric_points(landmarks, "landmarks")
    if landmarks.shape[-2:] != (5, 2) or landmarks.ndim not in (2, 3):
        raise ValueError(f"landmarks: expected shape (5, 2) or (N, 5, 2), got {landmarks.shape}")
    out = np.asarray(landmarks, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError("landmarks: contains NaN or infinity")
    return out


def _as_landmark_batch(landmarks: object, shape: tuple[int, ...]) -> np.ndarray:
    """Landmarks [5, 2] or [N, 5, 2] as float64 [N, 5, 2], refused when they lie outside
    :func:`masksegx._validation.image_reach` of ``shape`` (they are not of a face in it)."""
    points = _as_landmark_array(landmarks)
    check_near_image(points, shape, "landmarks")
    return points[None] if points.ndim == 2 else points


def _as_joint(joint: object) -> np.ndarray:
    if not isinstance(joint, np.ndarray):
        raise TypeError(f"joint: expected a numpy.ndarray, got {type(joint).__name__}")
    if joint.shape[-1:] != (N_JOINT,):
        raise ValueError(f"joint: expected last axis {N_JOINT}, got shape {joint.shape}")
    return joint


def _as_head_probs(probs: object, name: str, classes: int) -> np.ndarray:
    if not isinstance(probs, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(probs).__name__}")
    if probs.shape != (classes,):
        raise ValueError(f"{name}: expected shape ({classes},), got {probs.shape}")
    return probs.astype(np.float32)


def _has_head(net: OpenedNet, path: str, output: str, classes: int) -> bool:
    """Whether the attribute net has the head ``output``; ValueError when it is not
    [N, classes]."""
    if output not in net.output_names[1:]:
        return False
    shape = net.output_shapes[net.output_names.index(output)]
    if not shape or shape[-1] != classes:
        raise ValueError(f"model: {path} has a {output!r} output that is not [N, {classes}]")
    return True


def _thresholds(values: object) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in values)  # type: ignore[attr-defined]  # TypeError caught
    except (TypeError, ValueError):
        raise ValueError(f"thresholds: expected two numbers (a, b), got {values!r}") from None
    if not 0.0 <= low <= high <= N_LEVELS - 1:
        raise ValueError(f"thresholds: expected 0 <= a <= b <= 10, got {(low, high)}")
    return low, high


def _attribute_net_settings(net: OpenedNet, path: str) -> dict[str, Any]:
    """Preprocessing settings (:data:`DEFAULT_SETTINGS` updated from the model's metadata) of an
    attribute net; ValueError for any other net."""
    shape = net.output_shapes[0] if net.output_shapes else None
    if not shape or shape[-1] != N_JOINT:
        raise ValueError(f"model: {path} is not an attribute net (one input, output [N, 22])")
    settings = dict(DEFAULT_SETTINGS)
    raw = net.metadata.get(METADATA_KEY)
    if raw:
        try:
            settings.update(json.loads(raw))
        except json.JSONDecodeError as error:
            raise ValueError(f"model: {path} has unreadable {METADATA_KEY} metadata: {error}") from None
    try:
        _check_settings(settings)
    except (TypeError, ValueError) as error:
        raise ValueError(f"model: {path} has bad {METADATA_KEY} metadata: {error}") from None
    return settings


def _check_settings(settings: dict[str, Any]) -> None:
    """The preprocessing settings of an attribute net: crop sizes within :func:`align_face`'s
    bounds, finite normalisation, a known channel order (TypeError/ValueError otherwise)."""
    check_int(settings["crop_size"], "crop_size", low=MIN_CROP_SIZE, high=MAX_CROP_SIZE)
    check_int(settings["input_size"], "input_size", low=1, high=MAX_CROP_SIZE)
    check_number(settings["padding"], "padding", low=0.0, high=2.0)
    for name in ("mean", "scale"):
        check_finite(settings[name], name)
    if settings["channels"] not in ("bgr", "rgb"):
        raise ValueError(f"channels: expected 'bgr' or 'rgb', got {settings['channels']!r}")
    _thresholds(settings["wearing_thresholds"])
