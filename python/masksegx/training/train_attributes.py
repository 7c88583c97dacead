"""Train the multi-attribute network (gender x mask coverage), export ONNX + metrics.

    python -m masksegx.training.train_attributes --cache .data/attr --out DIR \\
        [--device cuda|cpu] [--time-limit SECONDS] [--steps N] [--variants all|main|NAMES] \\
        [--data ../shared/data]

One command from the shared data to the shipped model and its card (CPU works, smaller)::

    python -m masksegx.training.train_attributes --data ../shared/data --cache .data/attr \\
        --out python/masksegx/models --device cpu --variants w0.5 --batch 64 --time-limit 420

(``--data`` builds the cache when missing and, after the export, runs :mod:`.attr_report`:
evaluation on the validation faces into ``--out``/attr_eval, ``attributes.md`` and
``attributes_ablations.md`` in ``--out``). On a GPU machine without the shared data, build the cache
here first (:mod:`.attr_cache`) and carry it.

Reads only the cache (:mod:`.attr_cache`). Several variants train side by side on the *same*
batches (the data pipeline is the cost; the nets are small), which gives the ablations for free:

==============  ============================================================================
``x0.5/x1/x2``  the main net (joint 22-way head, eq. 15 loss, input 64, width 1.0) with gender
                weight x = 0.5, 1, 2 (x is chosen on validation data)
``ce``          Table 2 "CE only": x*CE(gender) + CE(level) (negative log-likelihood of the
                true level under the level marginal), no L1, no KL
``ce_l1``       Table 2 "+ L1": ``ce`` + 0.4*L1(expected level - true level)
``separate``    Table 1: separate 2-way gender and 11-way level softmax heads, eq. 15 loss
``s48/s80/s96`` Table 1: input size 48 / 80 / 96 (the cache crop is 96)
``w0.5``        channel width 0.5
==============  ============================================================================

Loss (eq. 15), per batch, each term averaged over the samples that have its label:
``0.4*L1(E[level] - level) + 0.6*KL(g_level || P(level)) + x*CE(gender) + SET``, with
``g_level`` a Gaussian (sigma 1 level) over 0..10 centred on the true level and normalised;
``SET = -log P(level in S)`` for facemask crops that only have a class (none: S = {0},
incorrect: {1..4}, correct: {5..10}; the ffhq_synthmask ground truth puts correctly worn masks
at levels 5-7 and incorrectly worn ones at 3-4 with our coverage rule).

Samples: mtfl/utk faces (gender, level 0), half of them per draw with a synthetic mask put on
the crop (MaskTheFace template, random colour or texture, worn correctly with probability 0.6,
else slid down by a uniform amount; level from the synthetic mask), ffhq/real_dev (level),
facemask crops (wearing class). Augmentation: random similarity (rotation +-10 deg, scale
+-8 %, shift +-4 %), horizontal flip, brightness/contrast, 5 % greyscale.

Issue 13 additions: ``--cache`` takes several folders (the ILC/cuhk5pt extra cache);
``--teachers`` gives the unmasked faces without gender the teachers' soft label
(:func:`pseudo_labels`, :mod:`.teachers`); ``--augment strong`` widens the augmentation
(scale, crop jitter, blur, JPEG, colour, greyscale, side light); ``--start-from`` fine-tunes
an exported ``attributes.onnx`` (:func:`start_from`); ``--exclude-sources`` leaves sources out
of training for the leave-one-source-out runs. ILC training crops join the wearing-state
training and threshold fit; ILC validation crops are scored (``val_ilc``).

The scored and exported weights are an exponential moving average of the trained ones (decay
0.998, warmed up as (1 + step) / (10 + step)); scores average the joint probabilities of the
crop and its mirror image (gender and coverage are mirror-invariant), as the predictor does.
The exported graph is one pass (``mirror_average`` false in its metadata: the predictor runs
the mirror image itself), which the native executor reads (it has no Slice for an in-graph
flip). ``--single-pass SRC`` rewrites a file exported with the in-graph mirror that way.

After training, each variant's wearing thresholds (a, b) are fitted on training predictions
(facemask training crops, ffhq ``train/``, 2000 unmasked faces) by maximising accuracy over a
grid, and all variants are scored on the validation crops. The shipped net is the best
validation score (mean of clean gender accuracy, masked gender accuracy and facemask wearing
accuracy) among the eq. 15 joint-head variants; a cheaper variant within 0.005 of the best wins.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .._models import onnx_session
from ..attributes import METADATA_KEY, N_LEVELS
from ..synthesis import apply_mask, coverage_level, estimate_face_box, frontal, load_templates, load_textures
from .attr_cache import CacheInfo, read_caches
from .attr_net import AttributeNet, ExportWrapper, count_macs, mirrored_probs
from .export import max_abs_difference, write_onnx
from .teachers import PSEUDO_MARGIN

MEAN, SCALE = 127.5, 1.0 / 128.0
SIGMA = 1.0
OPSET = 17
#: Allowed coverage levels per wearing class (set-valued likelihood for class-only samples).
WEARING_LEVELS = {0: range(0, 1), 1: range(1, 5), 2: range(5, 11)}
SYNTH_PROBABILITY = 0.5
CORRECT_PROBABILITY = 0.6
SOURCE_WEIGHTS = {"mtfl": 1.0, "utk": 1.0, "ffhq": 3.0, "real_dev": 3.0, "facemask": 1.0,
                  "ilc": 1.0, "cuhk": 1.0}
#: Wearing-state sources (facemask classes) whose training crops fit the thresholds.
WEARING_SOURCES = ("facemask", "ilc")
INCORRECT_WEIGHT = 4.0
SELECTION_TOLERANCE = 0.005
#: AdamW's decoupled weight decay (multiplied by the learning rate each step).
WEIGHT_DECAY = 0.05
#: Exponential moving average of the weights (what is scored and exported).
EMA_DECAY = 0.998


@dataclass(frozen=True)
class Variant:
    name: str
    size: int = 64
    width: float = 1.0
    head: str = "joint"
    loss: str = "eq15"  # eq15 | ce | ce_l1
    x: float = 1.0
    table: str = ""


VARIANTS = {
    v.name: v
    for v in (
        Variant("x0.5", x=0.5, table="x"),
        Variant("x1", x=1.0, table="x"),
        Variant("x2", x=2.0, table="x"),
        Variant("ce", loss="ce", table="2"),
        Variant("ce_l1", loss="ce_l1", table="2"),
        Variant("separate", head="separate", table="1"),
        Variant("s48", size=48, table="1"),
        Variant("s80", size=80, table="1"),
        Variant("s96", size=96, table="1"),
        Variant("w0.5", width=0.5, table="1"),
    )
}
MAIN_VARIANTS = ("x0.5", "x1", "x2")

#: Scores of one validation set (accuracies, level MAE, counts), by name.
SetScores = dict[str, float]
#: One training sample: images by input size (uint8 CHW), P(male) target (-1 unknown; 0/1 for
#: annotated faces, the teachers' soft label for pseudo-labelled ones), level, allowed-level mask,
#: and its pair (``--consistency``): the same face's other version (masked where the sample is
#: not, bare where it is) by input size, its level, and PAIR_NONE / PAIR_MASKED / PAIR_BARE (the
#: pair's images are empty without ``--consistency``, zeros where the face has no pair).
Sample = tuple[dict[int, torch.Tensor], float, int, torch.Tensor, dict[int, torch.Tensor], int, int]
PAIR_NONE, PAIR_MASKED, PAIR_BARE = 0, 1, 2


class LossTerms(TypedDict):
    ce_gender: torch.Tensor
    l1: torch.Tensor
    kl: torch.Tensor
    ce_level: torch.Tensor
    set: torch.Tensor


class VariantResult(TypedDict):
    """A trained variant's entry in ``attributes_metrics.json``."""

    variant: dict[str, object]
    thresholds: tuple[float, float]
    params: int
    macs: int
    metrics: dict[str, SetScores]
    score: float


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# Data


def level_set_mask(wearing: int) -> np.ndarray:
    mask = np.zeros(N_LEVELS, bool)
    if wearing >= 0:
        mask[list(WEARING_LEVELS[int(wearing)])] = True
    return mask


@dataclass(frozen=True)
class Augmentation:
    """Ranges of :func:`augment`: similarity (rotation degrees, scale, shift as a share of the
    crop), brightness/contrast, per-channel colour gain, light gradient, greyscale, blur and JPEG
    probabilities."""

    angle: float = 10.0
    scale: float = 0.08
    shift: float = 0.04
    contrast: float = 0.25
    brightness: float = 25.0
    colour: float = 0.0
    gradient: float = 0.0
    grey: float = 0.05
    blur: float = 0.0
    jpeg: float = 0.0


AUGMENTATIONS = {
    "default": Augmentation(),
    # For faces from other sources (issue 13): looser crops, colour casts, side light, low
    # resolution and compression.
    "strong": Augmentation(angle=15.0, scale=0.15, shift=0.08, contrast=0.35, brightness=35.0,
                           colour=0.12, gradient=0.35, grey=0.15, blur=0.3, jpeg=0.3),
}


class Synthesizer:
    """Synthetic masks on aligned crops from the cache's downscaled templates."""

    def __init__(self, root: Path) -> None:
        self.templates = load_templates(root)
        self.frontal = frontal(self.templates)
        self.textures = list(load_textures(root).values())

    def __call__(self, crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
                 coverage: float | None = None) -> tuple[np.ndarray, int]:
        pool = self.frontal if rng.random() < 0.7 else self.templates
        template = pool[int(rng.integers(len(pool)))]
        texture: np.ndarray | None = None
        color: tuple[float, float, float] | None = None
        choice = rng.random()
        if choice < 0.2 and self.textures:
            texture = self.textures[int(rng.integers(len(self.textures)))]
        elif choice < 0.85:
            blue, green, red = (float(c) for c in rng.uniform(0, 255, 3))
            color = (blue, green, red)
        if coverage is None:
            coverage = 1.0 if rng.random() < CORRECT_PROBABILITY else float(rng.uniform(0, 0.9))
        image, mask = apply_mask(crop, landmarks, template, color=color, texture=texture,
                                 coverage=coverage, rng=rng)
        level = coverage_level(mask, landmarks, estimate_face_box(landmarks))
        return image, level


def resize_all(crop: np.ndarray, sizes: Iterable[int]) -> dict[int, np.ndarray]:
    out = {}
    for size in sizes:
        if size == crop.shape[0]:
            out[size] = crop
        else:
            out[size] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return out


class TrainSet(Dataset[Sample]):
    def __init__(self, crops: np.ndarray, meta: dict[str, np.ndarray], indices: np.ndarray,
                 templates: Path, sizes: Iterable[int], seed: int,
                 augmentation: Augmentation = AUGMENTATIONS["default"],
                 paired: bool = False) -> None:
        self.crops, self.meta, self.indices = crops, meta, indices
        self.augmentation = augmentation
        self.paired = paired
        self.templates, self.sizes, self.seed = templates, tuple(sizes), seed
        self.synth: Synthesizer | None = None
        self.rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> Sample:
        if self.synth is None or self.rng is None:
            self.synth = Synthesizer(self.templates)
            info = torch.utils.data.get_worker_info()
            self.rng = np.random.default_rng([self.seed, 0 if info is None else info.id + 1,
                                              int(time.time_ns() % 2**31)])
        rng = self.rng
        i = int(self.indices[k])
        crop = self.crops[i]
        landmarks = self.meta["landmarks"][i].astype(np.float64)
        level = int(self.meta["level"][i])
        pair, pair_level, pair_state = None, 0, PAIR_NONE
        if self.meta["synth"][i]:
            wear = rng.random() < SYNTH_PROBABILITY
            if wear or self.paired:
                try:
                    masked, masked_level = self.synth(crop, landmarks, rng)
                except ValueError:
                    wear = False
                else:
                    bare, bare_level = crop, level
                    crop, level = (masked, masked_level) if wear else (bare, bare_level)
                    if self.paired:
                        pair, pair_level = (bare, bare_level) if wear else (masked, masked_level)
                        pair_state = PAIR_BARE if wear else PAIR_MASKED
        # The pair gets the same augmentation draw: it differs from the sample by the mask only.
        state = rng.bit_generator.state
        crop = augment(crop, rng, self.augmentation)
        images = resize_all(crop, self.sizes)
        if pair is not None:
            rng.bit_generator.state = state
            pair_images = _chw(resize_all(augment(pair, rng, self.augmentation), self.sizes))
        else:
            pair_images = {s: torch.zeros((3, s, s) if self.paired else (0,), dtype=torch.uint8)
                           for s in self.sizes}
        wearing = int(self.meta["wearing"][i])
        # A class-only sample (facemask) gives a level set; known levels need none.
        set_mask = level_set_mask(wearing) if level < 0 else np.zeros(N_LEVELS, bool)
        return (
            _chw(images), float(self.meta["gender_target"][i]), level, torch.from_numpy(set_mask),
            pair_images, pair_level, pair_state,
        )


def _chw(images: dict[int, np.ndarray]) -> dict[int, torch.Tensor]:
    return {s: torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)))
            for s, im in images.items()}


class EndlessWeightedSampler(Sampler[int]):
    """Indices drawn with replacement in proportion to ``weights``, without end (chunks of
    65536, so nothing large is allocated up front)."""

    def __init__(self, weights: np.ndarray, seed: int) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.seed = seed

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.multinomial(self.weights, 65536, True, generator=generator).tolist()


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)


def augment(crop: np.ndarray, rng: np.random.Generator,
            settings: Augmentation = AUGMENTATIONS["default"]) -> np.ndarray:
    size = crop.shape[0]
    angle = rng.uniform(-settings.angle, settings.angle)
    scale = rng.uniform(1 - settings.scale, 1 + settings.scale)
    matrix = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, scale)
    matrix[:, 2] += rng.uniform(-settings.shift, settings.shift, 2) * size
    out = cv2.warpAffine(crop, matrix, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < settings.blur:
        # Low resolution: down and up again.
        factor = rng.uniform(0.3, 0.7)
        small = cv2.resize(out, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    out = out.astype(np.float32)
    contrast = rng.uniform(1 - settings.contrast, 1 + settings.contrast)
    brightness = rng.uniform(-settings.brightness, settings.brightness)
    out = (out - out.mean()) * contrast + out.mean() + brightness
    if settings.colour:
        out *= rng.uniform(1 - settings.colour, 1 + settings.colour, 3).astype(np.float32)
    if settings.gradient and rng.random() < 0.5:
        # Light from one side: a linear gain ramp across the crop.
        direction = rng.uniform(0, 2 * np.pi)
        axis = (np.arange(size, dtype=np.float32) - size / 2) / size
        ramp = np.cos(direction) * axis[None, :] + np.sin(direction) * axis[:, None]
        out *= (1 + rng.uniform(0, settings.gradient) * 2 * ramp)[:, :, None]
    if rng.random() < settings.grey:
        out[:] = out.mean(axis=2, keepdims=True)
    augmented: np.ndarray = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < settings.jpeg:
        quality = int(rng.integers(30, 90))
        _, data = cv2.imencode(".jpg", augmented, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if decoded is not None:
            augmented = decoded
    return augmented


@dataclass
class EvalSet:
    name: str
    images: dict[int, np.ndarray]  # size -> uint8 [N, 3, S, S]
    gender: np.ndarray
    level: np.ndarray
    wearing: np.ndarray
    extra: dict[str, object] = field(default_factory=dict)


def make_eval_set(name: str, crops: np.ndarray, meta: dict[str, np.ndarray], indices: np.ndarray,
                  sizes: Iterable[int], synth: Synthesizer | None = None) -> EvalSet:
    images: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
    levels = meta["level"][indices].astype(np.int64).copy()
    wearing = meta["wearing"][indices].astype(np.int64).copy()
    for k, i in enumerate(indices):
        crop = crops[i]
        if synth is not None:
            rng = np.random.default_rng([7, int(i)])
            crop, levels[k] = synth(crop, meta["landmarks"][i].astype(np.float64), rng, 1.0)
            wearing[k] = 2
        for s, im in resize_all(crop, sizes).items():
            images[s].append(im.transpose(2, 0, 1))
    return EvalSet(name, {s: np.stack(v) for s, v in images.items()},
                   meta["gender"][indices].astype(np.int64), levels, wearing)


# ---------------------------------------------------------------------------------------------
# Losses


def gaussian_targets(level: torch.Tensor) -> torch.Tensor:
    grid = torch.arange(N_LEVELS, device=level.device, dtype=torch.float32)
    weights = torch.exp(-0.5 * ((grid[None] - level[:, None].float()) / SIGMA) ** 2)
    return weights / weights.sum(1, keepdim=True)


def losses(log_joint: torch.Tensor, gender: torch.Tensor, level: torch.Tensor,
           set_mask: torch.Tensor) -> LossTerms:
    """Loss terms (each a mean over the samples carrying its label; 0 when none does);
    ``gender`` is the P(male) target, negative when unknown."""
    log_joint = log_joint.view(-1, 2, N_LEVELS)
    log_gender = torch.logsumexp(log_joint, dim=2)
    log_level = torch.logsumexp(log_joint, dim=1)

    def mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # No host synchronisation: masked sum over the count (or 1).
        keep = keep.to(values.dtype)
        return (values * keep).sum() / keep.sum().clamp(min=1.0)

    has_gender, has_level = gender >= 0, level >= 0
    has_set = set_mask.any(1)
    # ``gender`` is the P(male) target: 0/1 labels or a teacher's soft label.
    male = gender.clamp(min=0).to(log_gender.dtype)
    ce_gender = -(male * log_gender[:, 1] + (1 - male) * log_gender[:, 0])
    probs = log_level.exp()
    expected = probs @ torch.arange(N_LEVELS, device=probs.device, dtype=probs.dtype)
    l1 = (expected - level.float()).abs()
    target = gaussian_targets(level.clamp(min=0))
    kl = (target * (torch.log(target.clamp(min=1e-12)) - log_level)).sum(1)
    ce_level = -log_level.gather(1, level.clamp(min=0)[:, None])[:, 0]
    set_nll = -torch.logsumexp(log_level.masked_fill(~set_mask, -1e4), dim=1)
    return {
        "ce_gender": mean(ce_gender, has_gender), "l1": mean(l1, has_level),
        "kl": mean(kl, has_level), "ce_level": mean(ce_level, has_level),
        "set": mean(set_nll, has_set),
    }


Batch = tuple[dict[int, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]


def with_pairs(batch: Batch, pair_images: dict[int, torch.Tensor], pair_level: torch.Tensor,
               paired: torch.Tensor) -> Batch:
    """``batch`` (images, gender, level, set mask) with the ``paired`` samples' other versions
    appended as labelled samples of their own (same gender, the pair's level, no level set)."""
    images, gender, level, set_mask = batch
    if len(paired) == 0:
        return batch
    return (
        {s: torch.cat([im, pair_images[s][paired.cpu()]]) for s, im in images.items()},
        torch.cat([gender, gender[paired]]),
        torch.cat([level, pair_level[paired]]),
        torch.cat([set_mask, torch.zeros_like(set_mask[paired])]),
    )


def consistency(log_joint: torch.Tensor, pair_log_joint: torch.Tensor,
                pair_state: torch.Tensor) -> torch.Tensor:
    """KL from the bare face's gender distribution (held fixed) to its masked copy's, mean over
    the pairs (rows of ``log_joint`` and ``pair_log_joint`` are the two versions of one face):
    the mask hides part of the face, not its gender."""
    log_gender = torch.logsumexp(log_joint.view(-1, 2, N_LEVELS), dim=2)
    pair_gender = torch.logsumexp(pair_log_joint.view(-1, 2, N_LEVELS), dim=2)
    pair_masked = (pair_state == PAIR_MASKED)[:, None]
    bare = torch.where(pair_masked, log_gender, pair_gender).detach()
    masked = torch.where(pair_masked, pair_gender, log_gender)
    return (bare.exp() * (bare - masked)).sum(1).mean() if len(bare) else log_joint.sum() * 0


def make_optimizer(net: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """AdamW, decoupled weight decay WEIGHT_DECAY on the convolution kernels only (not on
    BatchNorm scales/shifts or biases)."""
    decay = [p for p in net.parameters() if p.ndim > 1]
    plain = [p for p in net.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                              {"params": plain, "weight_decay": 0.0}], lr=lr)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    ema_params: list[torch.Tensor] = list(ema.parameters())
    params: list[torch.Tensor] = list(net.parameters())
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), net.buffers()):
        ema_buffer.copy_(buffer)


def total_loss(terms: LossTerms, variant: Variant) -> torch.Tensor:
    if variant.loss == "ce":
        return variant.x * terms["ce_gender"] + terms["ce_level"] + terms["set"]
    if variant.loss == "ce_l1":
        return variant.x * terms["ce_gender"] + terms["ce_level"] + 0.4 * terms["l1"] + terms["set"]
    return 0.4 * terms["l1"] + 0.6 * terms["kl"] + variant.x * terms["ce_gender"] + terms["set"]


# ---------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def predict(net: torch.nn.Module, images: np.ndarray, device: str, batch: int = 1024) -> np.ndarray:
    """Joint probabilities (mean over the crop and its mirror, as the exported file) [N, 22]."""
    was_training = net.training
    net.eval()
    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start : start + batch]).to(device).float()
        out.append(mirrored_probs(net, (x - MEAN) * SCALE).float().cpu().numpy())
    net.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 2 * N_LEVELS), np.float32)


def summarise(joint: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p_male = joint[:, N_LEVELS:].sum(1)
    levels = joint[:, :N_LEVELS] + joint[:, N_LEVELS:]
    return p_male, levels, levels @ np.arange(N_LEVELS)


def wearing_from(expected: np.ndarray, thresholds: tuple[float, float]) -> np.ndarray:
    low, high = thresholds
    return np.where(expected < low, 0, np.where(expected >= high, 2, 1))


def fit_thresholds(expected: np.ndarray, wearing: np.ndarray) -> tuple[float, float]:
    """(a, b) on a 0.1 grid maximising the accuracy of :func:`wearing_from`."""
    best = (-1.0, (0.5, 4.5))
    grid = np.round(np.arange(0.1, 10.0, 0.1), 2)
    for low in grid[grid <= 5]:
        for high in grid[grid >= low]:
            accuracy = float((wearing_from(expected, (low, high)) == wearing).mean())
            if accuracy > best[0] + 1e-12:
                best = (accuracy, (float(low), float(high)))
    return best[1]


def gender_scores(p_male: np.ndarray, gender: np.ndarray) -> SetScores:
    keep = gender >= 0
    correct = (p_male[keep] > 0.5).astype(int) == gender[keep]
    out = {"gender_acc": float(correct.mean()) if keep.any() else math.nan}
    for value, name in ((0, "female"), (1, "male")):
        chosen = gender[keep] == value
        out[f"gender_acc_{name}"] = float(correct[chosen].mean()) if chosen.any() else math.nan
    out["n"] = int(keep.sum())
    return out


def evaluate(net: torch.nn.Module, variant: Variant, sets: dict[str, EvalSet], device: str,
             thresholds: tuple[float, float]) -> dict[str, SetScores]:
    result = {}
    for name, data in sets.items():
        joint = predict(net, data.images[variant.size], device)
        p_male, _, expected = summarise(joint)
        entry = gender_scores(p_male, data.gender) if (data.gender >= 0).any() else {}
        has_level = data.level >= 0
        if has_level.any():
            entry["level_mae"] = float(np.abs(expected[has_level] - data.level[has_level]).mean())
        has_wearing = data.wearing >= 0
        if has_wearing.any():
            predicted = wearing_from(expected[has_wearing], thresholds)
            entry["wearing_acc"] = float((predicted == data.wearing[has_wearing]).mean())
            entry["wearing_n"] = int(has_wearing.sum())
        result[name] = entry
    return result


def selection_score(metrics: dict[str, SetScores]) -> float:
    return float(np.mean([
        metrics["val_clean"]["gender_acc"], metrics["val_masked"]["gender_acc"],
        metrics["val_facemask"]["wearing_acc"],
    ]))


# ---------------------------------------------------------------------------------------------
# Export


def export_onnx(net: AttributeNet, variant: Variant, thresholds: tuple[float, float], path: Path,
                info: CacheInfo) -> dict[str, object]:
    import onnx

    # One pass: the native executor cannot run an in-graph flip; the predictor mirrors.
    wrapper = ExportWrapper(net, mirror=False).cpu().eval()
    size = variant.size
    model = write_onnx(wrapper, (1, 3, size, size), path, ["probs"], OPSET,
                       {"input": {0: "batch"}, "probs": {0: "batch"}})
    settings = {
        "crop_size": info["crop_size"], "input_size": size, "padding": info["padding"],
        "mean": MEAN, "scale": SCALE, "channels": "bgr",
        "wearing_thresholds": [float(t) for t in thresholds], "variant": variant.name,
        "width": variant.width, "head": variant.head, "x": variant.x, "mirror_average": False,
        "ema_decay": EMA_DECAY,
    }
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(settings)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    diff = max_abs_difference(wrapper, onnx_session(str(path), 0), [x], ["probs"])
    ops = sorted({node.op_type for node in model.graph.node})
    log(f"exported {path} ({path.stat().st_size} bytes); onnxruntime vs torch {diff:.2e}")
    return {"max_abs_diff": diff, "bytes": path.stat().st_size, "ops": ops,
            "settings": settings}


# ---------------------------------------------------------------------------------------------


def single_pass_copy(source: Path, target: Path) -> dict[str, object]:
    """Write ``source`` (an exported attributes.onnx, possibly averaging the mirror image in its
    graph) to ``target`` as the one-pass graph :func:`export_onnx` writes, same weights and
    settings (``mirror_average`` false); returns the export record."""
    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(source)).metadata_props}
    settings = json.loads(metadata[METADATA_KEY])
    variant = VARIANTS[settings["variant"]]
    net = AttributeNet(variant.width, variant.head)
    start_from(net, source, variant.size)
    info: CacheInfo = {"crop_size": settings["crop_size"], "padding": settings["padding"],
                       "tile": 0, "mosaic_columns": 0, "mosaic_tiles": 0, "jpeg_quality": 0,
                       "count": 0, "stats": {}, "command": ""}
    thresholds = (float(settings["wearing_thresholds"][0]), float(settings["wearing_thresholds"][1]))
    return export_onnx(net.eval(), variant, thresholds, target, info)


def build_sets(crops: np.ndarray, meta: dict[str, np.ndarray], sizes: Iterable[int],
               templates: Path) -> tuple[dict[str, EvalSet], EvalSet]:
    split, source = meta["split"], meta["source"]
    gendered = np.flatnonzero((split == 1) & (meta["gender"] >= 0))
    synth = Synthesizer(templates)
    sets = {
        "val_clean": make_eval_set("val_clean", crops, meta, gendered, sizes),
        "val_masked": make_eval_set("val_masked", crops, meta, gendered, sizes, synth),
    }
    for name in ("facemask", "ilc", "ffhq", "real_dev"):
        indices = np.flatnonzero((split == 1) & (source == name))
        if len(indices):  # a cache built with --sources may lack the source
            sets[f"val_{name}"] = make_eval_set(f"val_{name}", crops, meta, indices, sizes)
    # Threshold fitting: training crops with a wearing state (all facemask, ILC and ffhq
    # training crops, 2000 unmasked faces).
    rng = np.random.default_rng(3)
    clean = np.flatnonzero((split == 0) & meta["synth"])
    clean = rng.choice(clean, size=min(2000, len(clean)), replace=False)
    fit = np.concatenate([
        np.flatnonzero((split == 0) & np.isin(source, [*WEARING_SOURCES, "ffhq"])), clean,
    ])
    fit_set = make_eval_set("fit", crops, meta, np.sort(fit), sizes)
    return sets, fit_set


def pseudo_labels(meta: dict[str, np.ndarray], teachers_file: Path, teachers: Sequence[str],
                  margin: float = PSEUDO_MARGIN) -> dict[str, int]:
    """Give the unmasked training faces without a gender label (wearing none: det/cuhk5pt,
    facemask and ILC ``without_mask`` crops) the teachers' mean P(male) as ``gender_target``
    where the ``teachers`` (keys ``p_<name>`` of :mod:`.teachers`' file) agree and the mean is
    at least ``margin`` from 0.5; those faces get level 0 and may wear synthetic masks. Updates
    ``meta`` in place; returns counts per source of the labelled faces."""
    stored = dict(np.load(teachers_file))
    row = {(str(s), str(n)): k for k, (s, n) in enumerate(zip(stored["source"], stored["name"]))}
    eligible = np.flatnonzero((meta["gender"] < 0) & (meta["split"] == 0) & (meta["wearing"] == 0))
    counts: dict[str, int] = {}
    for i in eligible:
        k = row.get((str(meta["source"][i]), str(meta["name"][i])))
        if k is None:
            raise ValueError(f"teachers file {str(teachers_file)!r} has no entry for "
                             f"{meta['source'][i]}/{meta['name'][i]}")
        probs = np.array([stored[f"p_{name}"][k] for name in teachers])
        mean = float(probs.mean())
        if np.all(probs > 0.5) != np.all(probs < 0.5) and abs(mean - 0.5) >= margin:
            meta["gender_target"][i] = mean
            meta["level"][i] = 0
            meta["synth"][i] = True
            counts[str(meta["source"][i])] = counts.get(str(meta["source"][i]), 0) + 1
    return counts


def load_onnx_weights(net: AttributeNet, path: Path) -> None:
    """Copy the weights of an exported ``attributes.onnx`` into ``net`` (same variant).

    The export folds each BatchNorm into its convolution; the convolution gets the folded
    kernel and its BatchNorm becomes the identity plus the folded bias (mean 0, variance
    1 - eps, scale 1). Keep those BatchNorms in eval mode while fine-tuning
    (:func:`freeze_batchnorm`): batch statistics would undo the folding.
    """
    import onnx
    from onnx import numpy_helper

    if net.head_kind != "joint":
        raise ValueError(f"net: expected the joint head (the exported file's), got {net.head_kind!r}")
    model = onnx.load(str(path))
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = [node for node in model.graph.node if node.op_type == "Conv"]
    layers = list(net.features) + [net.fc3]
    convs = [(m, layers[k + 1] if k + 1 < len(layers) else None)
             for k, m in enumerate(layers) if isinstance(m, torch.nn.Conv2d)]
    if len(nodes) != len(convs):
        raise ValueError(f"{path}: {len(nodes)} convolutions, the net has {len(convs)}")
    with torch.no_grad():
        for node, (conv, after) in zip(nodes, convs):
            kernel = torch.from_numpy(values[node.input[1]].copy())
            bias = torch.from_numpy(values[node.input[2]].copy())
            if kernel.shape != conv.weight.shape:
                raise ValueError(f"{path}: kernel {tuple(kernel.shape)} for a convolution of "
                                 f"{tuple(conv.weight.shape)}")
            conv.weight.copy_(kernel)
            if isinstance(after, torch.nn.BatchNorm2d):
                # BatchNorm2d(track_running_stats=True) always has its statistics.
                assert after.running_mean is not None and after.running_var is not None
                after.weight.fill_(1.0)
                after.bias.copy_(bias)
                after.running_mean.zero_()
                after.running_var.fill_(1.0 - after.eps)
            else:
                assert conv.bias is not None  # the head convolution has a bias
                conv.bias.copy_(bias)


def start_from(net: AttributeNet, path: Path, size: int) -> None:
    """:func:`load_onnx_weights`, checked: the net (with the mirror average when the file's
    metadata says its graph has it) must reproduce the file's output on random inputs; then
    :func:`freeze_batchnorm`."""
    import onnx

    load_onnx_weights(net, path)
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    mirror = bool(json.loads(metadata.get(METADATA_KEY, "{}")).get("mirror_average", False))
    probe = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    wrapper = ExportWrapper(copy.deepcopy(net).float().cpu(), mirror).eval()
    reproduced = max_abs_difference(wrapper, onnx_session(str(path), 0), [probe], ["probs"])
    log(f"start from {path}: torch vs onnxruntime max difference {reproduced:.2e}")
    if reproduced > 1e-4:
        raise SystemExit(f"--start-from: the net does not reproduce {path} ({reproduced:.2e})")
    freeze_batchnorm(net)


def freeze_batchnorm(net: torch.nn.Module) -> None:
    """BatchNorm layers in eval mode (running statistics, no updates); scales/shifts train."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, nargs="+", default=[Path(".data/attr")],
                        help="cache folder(s) of attr_cache (several are concatenated)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--time-limit", type=float, default=240.0,
                        help="seconds of training (the schedule follows it); export follows")
    parser.add_argument("--steps", type=int, default=0, help="stop after N steps (0: time only)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    parser.add_argument("--variants", default="all",
                        help="all, main (x0.5,x1,x2) or comma-separated names of VARIANTS")
    parser.add_argument("--eval-every", type=float, default=60.0, help="seconds between logs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start-from", type=Path, metavar="ONNX",
                        help="fine-tune: start from this attributes.onnx (one variant, the same "
                        "as the file's; BatchNorm statistics stay frozen)")
    parser.add_argument("--teachers", type=Path, metavar="NPZ",
                        help="teachers' P(male) per crop (masksegx.training.teachers): label the "
                        "unmasked faces without gender (see pseudo_labels)")
    parser.add_argument("--teacher-names", default="gender_v1,mini_xception",
                        help="teachers whose agreement labels a face")
    parser.add_argument("--pseudo-margin", type=float, default=PSEUDO_MARGIN)
    parser.add_argument("--exclude-sources", default="",
                        help="comma-separated cache sources left out of training (the "
                        "leave-one-source-out runs); validation sets stay")
    parser.add_argument("--augment", choices=tuple(AUGMENTATIONS), default="default")
    parser.add_argument("--consistency", type=float, metavar="W",
                        help="train each bare/synthetic-masked face together with its other "
                        "version (same augmentation; both labelled) and add W x KL(bare || "
                        "masked) of their gender distributions (W = 0: the pairs alone)")
    parser.add_argument("--single-pass", type=Path, metavar="ONNX",
                        help="only rewrite this exported file as a one-pass graph into "
                        "--out/attributes.onnx (single_pass_copy) and exit")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default)")
    parser.add_argument("--data", type=Path,
                        help="../shared/data: build the cache first when --cache has none, and "
                        "after the export evaluate the model and write its card attributes.md "
                        "and attributes_ablations.md into --out (masksegx.training.attr_report); "
                        "the one-command CPU path")
    args = parser.parse_args(argv)
    if args.single_pass is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        record = single_pass_copy(args.single_pass, args.out / "attributes.onnx")
        (args.out / "single_pass_export.json").write_text(json.dumps(record, indent=1) + "\n")
        return 0
    if args.data is not None and not (args.cache[0] / "info.json").is_file():
        from .attr_cache import main as build_cache

        build_cache(["--data", str(args.data), "--out", str(args.cache[0])])
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    # OpenCV's thread pool does not survive fork(): once started in this process, DataLoader
    # workers block in their first cv2 call. Keep OpenCV serial here (workers are the parallelism).
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    device = args.device
    names = (list(VARIANTS) if args.variants == "all" else list(MAIN_VARIANTS)
             if args.variants == "main" else args.variants.split(","))
    variants = [VARIANTS[n] for n in names]
    sizes = sorted({v.size for v in variants})
    args.out.mkdir(parents=True, exist_ok=True)

    crops, meta, info = read_caches(args.cache)
    templates = args.cache[0] / "templates"
    log(f"cache: {len(crops)} crops; variants {names}; device {device}")
    meta["gender_target"] = meta["gender"].astype(np.float32)
    pseudo = (pseudo_labels(meta, args.teachers, args.teacher_names.split(","), args.pseudo_margin)
              if args.teachers is not None else {})
    log(f"teacher-labelled faces: {pseudo or 'none'}")
    excluded = [name for name in args.exclude_sources.split(",") if name]
    train_idx = np.flatnonzero((meta["split"] == 0) & ~np.isin(meta["source"], excluded))
    log(f"training crops: {len(train_idx)} (left out: {excluded or 'none'})")
    weights = np.array([SOURCE_WEIGHTS[s] for s in meta["source"][train_idx]])
    weights[meta["wearing"][train_idx] == 1] *= INCORRECT_WEIGHT
    sets, fit_set = build_sets(crops, meta, sizes, templates)
    log("validation sets: " + ", ".join(f"{k} {len(v.gender)}" for k, v in sets.items()))

    dataset = TrainSet(crops, meta, train_idx, templates, sizes, args.seed,
                       AUGMENTATIONS[args.augment], paired=args.consistency is not None)
    sampler = EndlessWeightedSampler(weights, args.seed)
    loader = DataLoader(dataset, batch_size=args.batch, sampler=sampler,
                        num_workers=args.workers, worker_init_fn=_worker_init,
                        pin_memory=device.startswith("cuda"),
                        drop_last=True, persistent_workers=args.workers > 0,
                        prefetch_factor=4 if args.workers > 0 else None)
    # torch's stubs give Module.to no memory_format overload (the call is valid).
    nets: dict[str, AttributeNet] = {
        v.name: AttributeNet(v.width, v.head).to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for v in variants
    }
    if args.start_from is not None:
        if len(variants) != 1:
            raise SystemExit("--start-from: train one variant (the file's)")
        start_from(nets[variants[0].name], args.start_from, variants[0].size)
    optims = {n: make_optimizer(net, args.lr) for n, net in nets.items()}
    emas = {n: copy.deepcopy(net).eval() for n, net in nets.items()}
    for ema in emas.values():
        ema.requires_grad_(False)
    use_amp = device.startswith("cuda")
    consistency_weight = args.consistency or 0.0
    step, samples = 0, 0
    train_start = time.time()
    last_log = train_start
    history: list[dict[str, object]] = []
    running: dict[str, float | torch.Tensor] = {n: 0.0 for n in nets}
    for images, gender, level, set_mask, pair_images, pair_level, pair_state in loader:
        elapsed = time.time() - train_start
        progress = elapsed / args.time_limit
        if args.steps:
            progress = max(progress, step / args.steps)
        if progress >= 1.0:
            break
        warm = step / 100
        lr = args.lr * (warm if step < 100 else 0.5 * (1 + math.cos(math.pi * progress)))
        gender, level, set_mask, pair_level, pair_state = (
            t.to(device, non_blocking=True)
            for t in (gender, level, set_mask, pair_level, pair_state)
        )
        count = len(gender)
        paired = torch.nonzero(pair_state != PAIR_NONE)[:, 0]
        images, gender, level, set_mask = with_pairs(
            (images, gender, level, set_mask), pair_images, pair_level, paired
        )
        inputs = {s: ((im.to(device, non_blocking=True).float() - MEAN) * SCALE).contiguous(
            memory_format=torch.channels_last) for s, im in images.items()}
        for variant in variants:
            net, optim = nets[variant.name], optims[variant.name]
            for group in optim.param_groups:
                group["lr"] = lr
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                log_joint = net(inputs[variant.size])
            terms = losses(log_joint.float(), gender, level, set_mask)
            loss = total_loss(terms, variant)
            loss = loss + consistency_weight * consistency(
                log_joint.float()[:count][paired], log_joint.float()[count:], pair_state[paired]
            )
            optim.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch: Tensor.backward is unannotated
            optim.step()
            update_ema(emas[variant.name], net, min(EMA_DECAY, (1 + step) / (10 + step)))
            # Running mean kept on the device (no synchronisation per step).
            decay = 0.98 if step else 0.0
            running[variant.name] = decay * running[variant.name] + (1 - decay) * loss.detach()
        step += 1
        samples += count
        if time.time() - last_log > args.eval_every:
            last_log = time.time()
            first = variants[0]
            quick = evaluate(emas[first.name], first, {"val_clean": sets["val_clean"]}, device,
                             (0.5, 4.5))["val_clean"]
            rate = samples / (time.time() - train_start)
            history.append({"seconds": round(time.time() - train_start, 1), "step": step,
                            "loss": {n: round(float(v), 4) for n, v in running.items()},
                            f"val_clean_gender_acc_{first.name}": quick["gender_acc"]})
            log(f"step {step} ({rate:.0f} samples/s) lr {lr:.2e} loss "
                + " ".join(f"{n}:{float(v):.3f}" for n, v in running.items())
                + f" | {first.name} val gender {quick['gender_acc']:.4f}")
    train_seconds = time.time() - train_start
    log(f"trained {step} steps, {samples} samples in {train_seconds:.0f} s")

    results: dict[str, VariantResult] = {}
    for variant in variants:
        net = emas[variant.name]
        _, _, expected = summarise(predict(net, fit_set.images[variant.size], device))
        keep = fit_set.wearing >= 0
        thresholds = fit_thresholds(expected[keep], fit_set.wearing[keep])
        metrics = evaluate(net, variant, sets, device, thresholds)
        params, macs = count_macs(variant.width, variant.size)
        results[variant.name] = {
            "variant": variant.__dict__, "thresholds": thresholds, "params": params,
            "macs": macs, "metrics": metrics, "score": selection_score(metrics),
        }
        log(f"{variant.name}: score {results[variant.name]['score']:.4f} thresholds "
            f"{thresholds} clean {metrics['val_clean']['gender_acc']:.4f} masked "
            f"{metrics['val_masked']['gender_acc']:.4f} wearing "
            f"{metrics['val_facemask']['wearing_acc']:.4f} ffhq level MAE "
            f"{metrics['val_ffhq'].get('level_mae', math.nan):.3f}")

    candidates = [n for n in results if VARIANTS[n].loss == "eq15" and VARIANTS[n].head == "joint"]
    best = max(results[n]["score"] for n in candidates)
    close = [n for n in candidates if results[n]["score"] >= best - SELECTION_TOLERANCE]
    chosen = min(close, key=lambda n: (results[n]["macs"], -results[n]["score"]))
    log(f"chosen: {chosen} (best score {best:.4f}; within {SELECTION_TOLERANCE}: {close})")
    export = export_onnx(emas[chosen].float(), VARIANTS[chosen], results[chosen]["thresholds"],
                         args.out / "attributes.onnx", info)
    record = {
        "chosen": chosen, "selection": {"best_score": best, "close": close,
                                        "tolerance": SELECTION_TOLERANCE},
        "export": export, "variants": results, "history": history,
        "training": {"steps": step, "samples": samples, "weight_decay": WEIGHT_DECAY,
                     "seconds": round(train_seconds, 1),
                     "total_seconds": round(time.time() - start, 1), "device": device,
                     "batch": args.batch, "lr": args.lr, "workers": args.workers,
                     "time_limit": args.time_limit, "step_limit": args.steps,
                     "torch": torch.__version__,
                     "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None},
        "cache": {"count": info["count"], "stats": info["stats"], "crop_size": info["crop_size"],
                  "padding": info["padding"], "command": info["command"]},
        "fine_tune": {"start_from": str(args.start_from) if args.start_from else None,
                      "teachers": str(args.teachers) if args.teachers else None,
                      "teacher_names": args.teacher_names.split(",") if args.teachers else [],
                      "pseudo_margin": args.pseudo_margin, "pseudo_labelled": pseudo,
                      "excluded_sources": excluded, "augment": args.augment,
                      "augmentation": AUGMENTATIONS[args.augment].__dict__},
        "command": "python -m masksegx.training.train_attributes "
                   + " ".join(sys.argv[1:] if argv is None else argv),
    }
    (args.out / "attributes_metrics.json").write_text(json.dumps(record, indent=1) + "\n")
    log(f"wrote {args.out / 'attributes.onnx'} and attributes_metrics.json "
        f"({time.time() - start:.0f} s total)")
    if args.data is not None:
        from .attr_report import main as report

        return report(["--data", str(args.data), "--metrics",
                       str(args.out / "attributes_metrics.json"), "--model",
                       str(args.out / "attributes.onnx"), "--card", str(args.out / "attributes.md"),
                       "--ablations", str(args.out / "attributes_ablations.md"),
                       "--evals", str(args.out / "attr_eval")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
