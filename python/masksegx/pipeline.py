"""One call from a photo to per-face results: detect, align, attributes, segment the worn mask.

>>> seg = masksegx.FaceMaskSegmenter()
>>> for face in seg(cv2.imread("photo.jpg")):
...     face.box, face.gender, face.coverage, face.wearing, face.mask.sum()

The stages are the package's public pieces: :class:`~masksegx.detect.FaceDetector` (MTCNN with
depthwise-separable nets), :class:`~masksegx.attributes.AttributePredictor` (gender and
mask-coverage level on the aligned crop) and one of three segmenters inside each face:

``"spectral"``  the paper's spectral extraction (:func:`~masksegx.spectral.segment_spectral`);
``"learned"``   the small encoder-decoder :class:`~masksegx.learned.MaskNet`;
``"fused"``     the learned probability cleaned by the spectral connectivity analysis
                (:func:`~masksegx.learned.segment_fused`).

Two constraints from the attributes shape the mask (see :class:`GenderPriors` and
``coverage_constraint``); ``python -m tools.pipeline_ablation`` measures both (docs/pipeline_ablation.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from . import learned, spectral
from ._models import check_backend, run_in_parallel, submit_to_pool
from ._validation import (
    as_image,
    check_bool,
    check_instance,
    check_number,
    check_threads,
    settings_or_default,
)
from .align import canonical_points
from .attributes import DEFAULT_BACKEND as ATTRIBUTES_BACKEND
from .attributes import AttributePredictor, FaceAttributes
from .detect import DEFAULT_THRESHOLDS, FaceDetector
from .spectral import SpectralParams

METHODS = ("fused", "learned", "spectral")
GENDER_CONSTRAINTS = ("none", "hard", "soft")
FACE_MODES = ("detect", "whole-image")


@dataclass(frozen=True)
class Face:
    """One face found in an image, with its attributes and worn-mask segmentation.

    box : float32 (4,) ``x1, y1, x2, y2`` in pixels (MTCNN convention: last pixel included, the
        inclusive ends of :mod:`masksegx.boxes`): the box the face was segmented in, the
        cascade's own (``detect_faces(..., calibrated_boxes=False)``; ``detect_faces`` returns
        it redrawn by :data:`masksegx.detect.OUTPUT_CONVENTION` by default).
    score : detector face probability; 0.0 in ``faces="whole-image"`` mode when the detector
        found no face in the crop and the landmarks are the canonical guess.
    landmarks : float32 (5, 2) left eye, right eye, nose, left and right mouth corner (x, y).
    gender : ``"female"`` or ``"male"``; gender_prob : P(male) in [0, 1].
    coverage_probs : float32 (11,) distribution of the mask-coverage level 0..10.
    coverage : expected coverage level (0 = no mask, 10 = lower face fully covered).
    wearing : ``"none"``, ``"incorrect"`` or ``"correct"``.
    mask : bool (H, W), image size: the pixels of this face's worn face mask.
    wearing_probs : float32 (3,) P(none, incorrect, correct) from the attribute net's wearing
        head (``wearing`` is the most probable), or None for an attribute model without one.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    gender: str
    gender_prob: float
    coverage_probs: np.ndarray
    coverage: float
    wearing: str
    mask: np.ndarray
    wearing_probs: np.ndarray | None = None


@dataclass(frozen=True)
class SegmentationPrior:
    """The per-gender settings a segmenter takes from the gender constraint.

    threshold : probability above which a pixel is mask (learned and fused methods).
    membership_threshold : fuzzy membership above which a pixel is a mask candidate (spectral).
    """

    threshold: float
    membership_threshold: float

    def __post_init__(self) -> None:
        check_number(self.threshold, "threshold", low=0.0, high=1.0)
        check_number(self.membership_threshold, "membership_threshold", low=0.0, high=1.0)


@dataclass(frozen=True)
class GenderPriors:
    """Gender-specific segmentation priors and how confident the gender must be to use them.

    ``soft`` blends the female and male priors linearly by P(male) when
    ``max(P(male), P(female)) >= confidence`` and uses the neutral prior otherwise; ``hard`` takes
    the prior of the more likely gender whatever its confidence; ``none`` always uses neutral.
    The defaults come from ``python -m tools.pipeline_ablation --tune`` (images never used for the
    evaluation, each face's gender given by the attribute network): the learned and fused
    probability thresholds came out the same for both genders (0.5), the spectral membership
    threshold did not (female faces 0.4, male faces 0.55; dark beards and stubble falling into
    the mask clusters would explain it, which we have not checked).
    """

    female: SegmentationPrior = SegmentationPrior(0.5, 0.4)
    male: SegmentationPrior = SegmentationPrior(0.5, 0.55)
    neutral: SegmentationPrior = SegmentationPrior(0.5, 0.4)
    confidence: float = 0.8

    def __post_init__(self) -> None:
        for name in ("female", "male", "neutral"):
            check_instance(getattr(self, name), SegmentationPrior, name)
        check_number(self.confidence, "confidence", low=0.0, high=1.0)

    def resolve(self, p_male: float, mode: str) -> SegmentationPrior:
        """The prior for a face with P(male) = ``p_male`` under constraint ``mode``."""
        mode = _choice(mode, GENDER_CONSTRAINTS, "mode")
        p_male = check_number(p_male, "p_male", low=0.0, high=1.0)
        if mode == "none":
            return self.neutral
        if mode == "hard":
            return self.male if p_male >= 0.5 else self.female
        if max(p_male, 1.0 - p_male) < self.confidence:
            return self.neutral
        return SegmentationPrior(
            *(
                (1.0 - p_male) * f + p_male * m
                for f, m in zip(dataclasses.astuple(self.female), dataclasses.astuple(self.male))
            )
        )


class FaceMaskSegmenter:
    """Finds faces, reads their attributes and segments the face mask each one wears.

    Parameters
    ----------
    method : ``"fused"`` (default), ``"learned"`` or ``"spectral"``; see the module docstring.
    gender_constraint : ``"none"`` (default), ``"soft"`` or ``"hard"``; see :class:`GenderPriors`.
        The default follows ``docs/pipeline_ablation.md``: on the held-out images the soft
        constraint ties with none for the fused and learned methods and costs the spectral
        method 0.002 mIoU, so it is off unless asked for.
    faces : ``"detect"`` runs the detector; ``"whole-image"`` takes each image as one face crop
        (for datasets of crops): the box is the whole image and the landmarks are those of the
        detector's best face in it, or the canonical landmark layout scaled to the image.
    coverage_constraint : when True, a face whose predicted coverage level is 0 with
        probability >= ``no_mask_probability`` gets an empty mask (nobody wears a mask there).
        Off by default: on ``real_dev_val`` it emptied the masks of masked faces the attribute
        net misread (fused mIoU 0.919 with it, 0.950 without; ``docs/pipeline_ablation.md``).
    min_face_size, thresholds : detector settings (see :class:`~masksegx.detect.FaceDetector`).
    threads : the most threads one call uses (1 = single-threaded, the default). With N >= 2,
        the detector runs its pyramid levels and crops N at a time (see
        :class:`~masksegx.detect.FaceDetector`); then the attribute net runs on a pool thread
        while the calling thread runs MaskNet and segments the faces, the pool thread joining
        the segmenting when free (with a gender or coverage constraint the masks wait for the
        attributes: the attribute net and MaskNet side by side, then the faces N at a time).
        Every net itself runs on one thread (onnxruntime sessions get one intra-op
        thread), so at most N threads are busy and onnxruntime's pools never compete with ours;
        the N - 1 extra threads come from one pool shared by the process. Results do not depend
        on N. With ``coverage_constraint`` the attributes come before MaskNet (they decide which
        faces it sees). For the throughput of many images, calling one segmenter from several
        threads with ``threads=1`` (as ``masksegx segment --threads`` does) keeps every core
        busy for longer.
    backend : None (default) runs each net on the backend measured faster for it: the detector
        on the masksegx C++ kernels, the attribute net and MaskNet in onnxruntime (see
        :data:`masksegx.attributes.DEFAULT_BACKEND`); ``"native"`` or ``"onnxruntime"`` runs
        every net, the detector's included, on that one (the answers agree to float rounding).
    priors : :class:`GenderPriors`; the tuned defaults when None.
    spectral_params : :class:`~masksegx.spectral.SpectralParams` for ``method="spectral"``.
    fused_params : :class:`~masksegx.learned.FusedParams` for ``method="fused"``.

    Notes
    -----
    Calling the segmenter does not change it, and its models are safe to run from several
    threads at once: one instance may serve concurrent calls.
    """

    def __init__(
        self,
        method: str = "fused",
        gender_constraint: str = "none",
        faces: str = "detect",
        *,
        coverage_constraint: bool = False,
        no_mask_probability: float = 0.9,
        min_face_size: float = 20,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        threads: int = 1,
        backend: str | None = None,
        priors: GenderPriors | None = None,
        spectral_params: SpectralParams | None = None,
        fused_params: learned.FusedParams | None = None,
    ) -> None:
        self.method = _choice(method, METHODS, "method")
        self.gender_constraint = _choice(gender_constraint, GENDER_CONSTRAINTS, "gender_constraint")
        self.faces = _choice(faces, FACE_MODES, "faces")
        self.coverage_constraint = check_bool(coverage_constraint, "coverage_constraint")
        self.no_mask_probability = check_number(
            no_mask_probability, "no_mask_probability", low=0.0, high=1.0
        )
        self.threads = check_threads(threads)
        if backend is not None:
            check_backend(backend)
        self.priors = settings_or_default(priors, GenderPriors, "priors")
        self.spectral_params = settings_or_default(spectral_params, SpectralParams, "spectral_params")
        self.fused_params = settings_or_default(fused_params, learned.FusedParams, "fused_params")
        # Every net single-threaded: the threads are the stages run side by side (see above).
        # The segmenters frame each face by the cascade's own box (the framing they were tuned
        # on), and each face reports the box it was segmented in.
        self.detector = FaceDetector(
            min_face_size=min_face_size, thresholds=thresholds, onnxruntime_threads=1,
            backend=backend or "native", threads=self.threads, calibrated_boxes=False,
        )
        self.attributes = AttributePredictor(threads=1, backend=backend or ATTRIBUTES_BACKEND)
        self.masknet = (
            learned.MaskNet(threads=1, backend=backend or learned.DEFAULT_BACKEND)
            if self.method != "spectral" else None
        )

    def __call__(self, image: np.ndarray) -> list[Face]:
        """Analyse a BGR uint8 HxWx3 image; returns one :class:`Face` per face, best first."""
        image = as_image(image)
        boxes, scores, landmarks = self._locate(image)
        if not len(scores):
            return []
        # A whole-image face is segmented as a crop (see _segment).
        views_of = [None if self.faces == "whole-image" else box for box in boxes]
        masknet = self.masknet
        if masknet is not None and not self.coverage_constraint and self.gender_constraint == "none":
            # The masks need no attribute: the attribute net runs on a pool thread while this
            # one runs MaskNet and starts on the masks, which the pool thread joins when free.
            pending = submit_to_pool(
                self.threads, lambda: self.attributes._predict(image, landmarks)
            )
            probabilities = masknet._view_probabilities(image, views_of)
            masks = self._masks(image, boxes, [self.priors.neutral] * len(scores), probabilities)
            attributes = pending.result()
        else:
            attributes, views, priors = self._attributes_first(image, landmarks, views_of)
            masks = self._masks(image, boxes, priors, views)
        return [
            Face(
                box=box,
                score=float(score),
                landmarks=points,
                gender=attr.gender,
                gender_prob=attr.gender_prob,
                coverage_probs=attr.coverage_probs,
                coverage=attr.coverage,
                wearing=attr.wearing,
                mask=mask,
                wearing_probs=attr.wearing_probs,
            )
            for box, score, points, attr, mask in zip(boxes, scores, landmarks, attributes, masks)
        ]

    def _attributes_first(
        self, image: np.ndarray, landmarks: np.ndarray, views_of: list[np.ndarray | None]
    ) -> tuple[list[FaceAttributes], list[learned.ViewProbability | None],
               list[SegmentationPrior | None]]:
        """The attributes, MaskNet views and segmentation priors (None: the face gets an empty
        mask) where the masks depend on the attributes: a gender constraint, a coverage
        constraint or the spectral method."""
        views: list[learned.ViewProbability | None] = [None] * len(landmarks)
        masknet = self.masknet
        if masknet is not None and not self.coverage_constraint:
            # Both read only the detections: on two threads side by side when there are two.
            tasks: list[Callable[[], object]] = [
                lambda: self.attributes._predict(image, landmarks),
                lambda: masknet._view_probabilities(image, views_of),
            ]
            found, probabilities = run_in_parallel(self.threads, _call, tasks)
            attributes = cast(list[FaceAttributes], found)
            views = list(cast(list[learned.ViewProbability], probabilities))
        else:
            attributes = self.attributes._predict(image, landmarks)
        priors: list[SegmentationPrior | None] = [
            None
            if self.coverage_constraint and attr.coverage_probs[0] >= self.no_mask_probability
            else self.priors.resolve(attr.gender_prob, self.gender_constraint)
            for attr in attributes
        ]
        if masknet is not None and self.coverage_constraint:
            # One MaskNet batch for every face that needs a mask.
            wanted = [i for i, prior in enumerate(priors) if prior is not None]
            for i, view in zip(wanted, masknet._view_probabilities(
                    image, [views_of[i] for i in wanted])):
                views[i] = view
        return attributes, views, priors

    def _masks(
        self,
        image: np.ndarray,
        boxes: np.ndarray,
        priors: Sequence[SegmentationPrior | None],
        views: Sequence[learned.ViewProbability | None],
    ) -> list[np.ndarray]:
        """Every face's mask, ``self.threads`` faces at a time."""
        return run_in_parallel(
            self.threads,
            lambda k: self._segment(image, boxes[k], priors[k], views[k]),
            range(len(boxes)),
        )

    def _locate(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = self.detector._detect(image)
        if self.faces == "detect":
            return found.boxes, found.scores, found.landmarks
        height, width = image.shape[:2]
        box = np.array([0, 0, width - 1, height - 1], np.float32)
        if len(found):
            return box[None], found.scores[:1], found.landmarks[:1]
        guess = canonical_points(112) / 112.0 * np.array([width, height])
        return box[None], np.zeros(1, np.float32), guess.astype(np.float32)[None]

    def _segment(
        self,
        image: np.ndarray,
        box: np.ndarray,
        prior: SegmentationPrior | None,
        view: learned.ViewProbability | None,
    ) -> np.ndarray:
        """The mask of one face under ``prior`` (None: an empty mask); ``view``: its MaskNet
        probability (learned and fused methods)."""
        if prior is None:
            return np.zeros(image.shape[:2], bool)
        if self.method == "spectral":
            params = dataclasses.replace(
                self.spectral_params, membership_threshold=prior.membership_threshold
            )
            # A whole-image face is segmented as a crop: the framing the segmenters were tuned on.
            region = None if self.faces == "whole-image" else _pixel_box(box, image.shape)
            return spectral._segment_spectral(image, region, params).mask
        assert view is not None  # computed for every face not emptied, by every other method
        if self.method == "learned":
            return learned._threshold_view(image.shape, view, prior.threshold)
        fused = dataclasses.replace(self.fused_params, threshold=prior.threshold)
        return learned._segment_fused(image, None, fused, lambda _image, _box: view)


def _call(task: Callable[[], object]) -> object:
    return task()


def _pixel_box(box: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """MTCNN box (last pixel included, may leave the image) -> clipped exclusive-end box."""
    height, width = shape[:2]
    x0 = int(np.clip(np.floor(box[0]), 0, width - 1))
    y0 = int(np.clip(np.floor(box[1]), 0, height - 1))
    x1 = int(np.clip(np.ceil(box[2]) + 1, x0 + 1, width))
    y1 = int(np.clip(np.ceil(box[3]) + 1, y0 + 1, height))
    return x0, y0, x1, y1


def _choice(value: object, allowed: Sequence[str], name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {tuple(allowed)}, got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {tuple(allowed)}, got {value!r}")
    return str(value)
