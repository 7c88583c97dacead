"""Training samples of the learned segmentation path, made on the fly from the cache.

One sample = a square (or slightly stretched) view of a face image resized to ``S x S`` and its
soft target (probability of "worn face mask" per pixel). Sources, by share of the samples:

- ``ffhq`` (0.35): the 405 training portraits of ``seg/ffhq_synthmask`` (soft masks);
- ``real_dev`` (0.25): the 69 training photos of ``seg/real_dev``;
- ``synthetic`` (0.40): an unmasked MTFL face wearing a MaskTheFace template put on by
  :func:`masksegx.synthesis.apply_mask` (exact ground truth): random template; 20 % its own
  colours, 25 % a random texture, otherwise a random colour (any hue, white, black, grey, blue,
  skin tones); coverage 1 (55 %), 0.5-1 (30 %) or 0-0.5 (15 %); 8 % of these faces stay
  unmasked (empty target).

Framing (so that both inference framings are seen): "whole" views take the whole stored image
(x/y scale and centre jittered by up to about 10 %, so non-square whole images work too:
probability 0.35 ffhq, 0.45 real_dev, 0.15 synthetic); otherwise a "box" view: a square of
side U(1.05, 1.9) x the larger face-box side around the face-box centre (shifted by N(0, 0.07)
of the side), the framing :class:`masksegx.learned.MaskNet` uses with a detector box (margin
1.4). Views are rotated by N(0, 8) degrees (clipped to 20), mirrored half of the time, and
built by one affine warp (border replicated) of image and target.

Photometric augmentation on the view: contrast x U(0.65, 1.35) and brightness + U(-35, 35)
(always), per-channel gains U(0.85, 1.15) (p 0.5), hue +-8 and saturation x U(0.6, 1.4)
(p 0.5), gamma U(0.7, 1.5) (p 0.3), a directional light ramp (p 0.3), greyscale (p 0.05),
Gaussian blur sigma U(0.3, 1.5) (p 0.25), Gaussian noise sigma U(2, 10) (p 0.25), JPEG quality
U(30, 90) (p 0.3). Occlusion (p 0.15): an ellipse of a random or skin colour over the lower
face; the target is 0 under it.

Every sample is a deterministic function of ``(seed, index)``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from ..synthesis import MaskTemplate, apply_mask
from .seg_cache import unpack

SOURCES = ("ffhq", "real_dev", "synthetic")
SOURCE_SHARES = (0.35, 0.25, 0.40)
WHOLE_SHARE = {"ffhq": 0.35, "real_dev": 0.45, "synthetic": 0.15}
BOX_MARGIN_RANGE = (1.05, 1.9)
UNMASKED_SHARE = 0.08


def _decode(blob: np.ndarray, flags: int) -> np.ndarray:
    image = cv2.imdecode(blob, flags)
    if image is None:
        raise ValueError("corrupt image in the cache")
    return image


class SegmentationCache:
    """The cache of :mod:`.seg_cache`, kept as encoded bytes (decoded per sample)."""

    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        missing = [
            n for n in ("real.npz", "faces.npz", "templates.npz", "val.npz") if not (folder / n).is_file()
        ]
        if missing:
            raise FileNotFoundError(
                f"cache {str(folder)!r} lacks {missing}: run python -m masksegx.training.seg_cache"
            )
        self.real: dict[str, np.ndarray] = dict(np.load(folder / "real.npz"))
        self.faces: dict[str, np.ndarray] = dict(np.load(folder / "faces.npz"))
        self.val: dict[str, np.ndarray] = dict(np.load(folder / "val.npz"))
        t: dict[str, np.ndarray] = dict(np.load(folder / "templates.npz"))
        self.templates = [
            MaskTemplate(str(name),
                         _decode(unpack(t["templates"], t["template_offsets"], i), cv2.IMREAD_UNCHANGED),
                         t["anchors"][i])
            for i, name in enumerate(t["names"])
        ]
        self.textures = [
            _decode(unpack(t["textures"], t["texture_offsets"], i), cv2.IMREAD_COLOR)
            for i in range(len(t["texture_offsets"]) - 1)
        ]
        sources = self.real["sources"]
        self.by_source = {"ffhq": np.flatnonzero(sources == 0), "real_dev": np.flatnonzero(sources == 1)}

    def pair(self, store: dict[str, np.ndarray], index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(BGR image, float32 target in [0, 1], face box) of a stored labelled image."""
        image = _decode(unpack(store["images"], store["image_offsets"], index), cv2.IMREAD_COLOR)
        mask = _decode(unpack(store["masks"], store["mask_offsets"], index), cv2.IMREAD_GRAYSCALE)
        return image, mask.astype(np.float32) / 255.0, store["boxes"][index]

    def validation(self) -> list[tuple[str, np.ndarray, npt.NDArray[np.bool_]]]:
        """[(name, BGR image, bool truth)]: real_dev_val and ffhq_val (truth = soft mask > 0.5)."""
        out: list[tuple[str, np.ndarray, npt.NDArray[np.bool_]]] = []
        for i, source in enumerate(self.val["sources"]):
            image, target, _ = self.pair(self.val, i)
            out.append(("real_dev_val" if source == 1 else "ffhq_val", image, target > 0.5))
        return out


def _bgr_of_hsv(hsv: npt.NDArray[np.uint8]) -> tuple[float, float, float]:
    """The BGR colour of a [1, 1, 3] OpenCV HSV pixel."""
    blue, green, red = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return float(blue), float(green), float(red)


def _random_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    kind = rng.random()
    if kind < 0.35:  # any hue
        hsv = np.array([[[rng.integers(0, 180), rng.integers(40, 256), rng.integers(40, 256)]]], np.uint8)
        return _bgr_of_hsv(hsv)
    if kind < 0.50:  # white / light
        v = rng.uniform(200, 255)
        blue, green, red = (float(np.clip(v + rng.normal(0, 8), 0, 255)) for _ in range(3))
        return blue, green, red
    if kind < 0.65:  # black / dark
        v = rng.uniform(10, 70)
        blue, green, red = (float(np.clip(v + rng.normal(0, 6), 0, 255)) for _ in range(3))
        return blue, green, red
    if kind < 0.75:  # grey
        v = rng.uniform(70, 200)
        return (v, v, v)
    if kind < 0.90:  # surgical blues / greens
        hsv = np.array(
            [[[rng.integers(80, 115), rng.integers(60, 200), rng.integers(120, 240)]]], np.uint8
        )
        return _bgr_of_hsv(hsv)
    # skin tones, beige, pink
    hsv = np.array([[[rng.integers(0, 22), rng.integers(40, 140), rng.integers(120, 240)]]], np.uint8)
    return _bgr_of_hsv(hsv)


def synthetic(
    cache: SegmentationCache, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    faces = cache.faces
    index = int(rng.integers(len(faces["image_offsets"]) - 1))
    image = _decode(unpack(faces["images"], faces["image_offsets"], index), cv2.IMREAD_COLOR)
    landmarks, box = faces["landmarks"][index].astype(np.float64), faces["boxes"][index]
    target = np.zeros(image.shape[:2], np.float32)
    if rng.random() < UNMASKED_SHARE:
        return image, target, box
    template = cache.templates[int(rng.integers(len(cache.templates)))]
    style = rng.random()
    colour: tuple[float, float, float] | None = None
    texture: np.ndarray | None = None
    if style >= 0.45:
        colour = _random_colour(rng)
    elif style >= 0.20:
        texture = cache.textures[int(rng.integers(len(cache.textures)))]
    r = rng.random()
    coverage = 1.0 if r < 0.55 else rng.uniform(0.5, 1.0) if r < 0.85 else rng.uniform(0.0, 0.5)
    try:
        image, mask = apply_mask(image, landmarks, template, color=colour, texture=texture,
                                 coverage=coverage, rng=rng)
    except ValueError:  # degenerate landmarks: keep the unmasked face
        return image, target, box
    return image, mask.astype(np.float32), box


def _view_matrix(
    shape: tuple[int, ...], box: np.ndarray, whole: bool, size: int, rng: np.random.Generator
) -> np.ndarray:
    h, w = shape
    if whole:
        cx, cy = w / 2 + rng.normal(0, 0.03 * w), h / 2 + rng.normal(0, 0.03 * h)
        cw, ch = w * rng.uniform(0.88, 1.1), h * rng.uniform(0.88, 1.1)
    else:
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0) * rng.uniform(*BOX_MARGIN_RANGE)
        cx = (x0 + x1) / 2 + rng.normal(0, 0.07 * side)
        cy = (y0 + y1) / 2 + rng.normal(0, 0.07 * side)
        cw, ch = side * rng.uniform(0.95, 1.05), side * rng.uniform(0.95, 1.05)
    angle = float(np.clip(rng.normal(0, 8), -20, 20))
    # Output = scale * rotate(input - centre) + size/2, with anisotropic scale.
    theta = np.deg2rad(angle)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    linear = np.diag([size / cw, size / ch]) @ rot
    if rng.random() < 0.5:
        linear = np.diag([-1.0, 1.0]) @ linear
    offset = np.array([size / 2, size / 2]) - linear @ np.array([cx, cy])
    return np.hstack([linear, offset[:, None]])


def _photometric(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x: np.ndarray = view.astype(np.float32)
    x = x * rng.uniform(0.65, 1.35) + rng.uniform(-35, 35)
    if rng.random() < 0.5:
        x *= rng.uniform(0.85, 1.15, 3).astype(np.float32)
    if rng.random() < 0.3:  # directional light
        s = x.shape[0]
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * np.arange(s)[None, :] + np.sin(angle) * np.arange(s)[:, None]) / s
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        low, high = rng.uniform(0.55, 1.0), rng.uniform(1.0, 1.3)
        x *= (low + (high - low) * ramp)[..., None].astype(np.float32)
    x = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(x, cv2.COLOR_BGR2HSV).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + int(rng.integers(-8, 9))) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.6, 1.4), 0, 255)
        x = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    if rng.random() < 0.3:
        gamma = rng.uniform(0.7, 1.5)
        x = (255.0 * (x / 255.0) ** gamma).astype(np.uint8)
    if rng.random() < 0.05:
        x = cv2.cvtColor(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.25:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 1.5))
    if rng.random() < 0.25:
        noise = rng.normal(0, rng.uniform(2, 10), x.shape).astype(np.float32)
        x = np.clip(x.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, data = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        x = _decode(data, cv2.IMREAD_COLOR)
    return x


def _occlude(view: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> None:
    s = view.shape[0]
    centre = (int(rng.uniform(0.2, 0.8) * s), int(rng.uniform(0.5, 0.95) * s))
    axes = (int(rng.uniform(0.06, 0.2) * s), int(rng.uniform(0.06, 0.25) * s))
    if rng.random() < 0.5:
        hsv = np.array([[[rng.integers(0, 22), rng.integers(40, 140), rng.integers(90, 230)]]], np.uint8)
        colour = tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])
    else:
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    occluder = np.zeros((s, s), np.uint8)
    cv2.ellipse(occluder, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    inside = occluder > 0
    view[inside] = colour
    target[inside] = 0.0


def make_sample(cache: SegmentationCache, seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [S, S, 3] BGR view, float32 [S, S] target) for sample ``index`` of run ``seed``."""
    rng = np.random.default_rng([seed, index])
    source = SOURCES[int(rng.choice(3, p=SOURCE_SHARES))]
    if source == "synthetic":
        image, target, box = synthetic(cache, rng)
    else:
        pool = cache.by_source[source]
        image, target, box = cache.pair(cache.real, int(pool[rng.integers(len(pool))]))
    whole = rng.random() < WHOLE_SHARE[source]
    matrix = _view_matrix(image.shape[:2], box, whole, size, rng)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.6:  # shrinking a lot: low-pass first against aliasing
        image = cv2.GaussianBlur(image, (0, 0), 0.45 / scale)
    view = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    target = cv2.warpAffine(target, matrix, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    view = _photometric(view, rng)
    if rng.random() < 0.15:
        _occlude(view, target, rng)
    return view, np.clip(target, 0.0, 1.0)
