"""Synthetic masked faces: MaskTheFace templates warped onto a face by its 5 landmarks.

Templates
---------
The MaskTheFace format (``masks/masks.cfg`` + RGBA PNG templates): one INI section per template
with ``template`` (path relative to the root folder) and six anchors ``mask_a`` .. ``mask_f``
(``x, y`` in template pixels). Their meaning, read from MaskTheFace's ``get_six_points`` and the
templates themselves:

====  =====================================================================================
a     left cheek: the jaw outline at the height of the nose tip (image left)
b     top centre: the middle of the nose bridge
c     right cheek: the jaw outline at the height of the nose tip (image right)
d     left jaw at the height of the lower lip's bottom edge
e     bottom centre: the chin
f     right jaw at the height of the lower lip's bottom edge
====  =====================================================================================

Face anchors from 5 landmarks
-----------------------------
MaskTheFace takes these from dlib's 68 points. We only have the 5 landmarks, so
:func:`face_anchors` places them in a face frame: origin at the eye midpoint, x along the eye
line (unit: inter-ocular distance ``D``), y perpendicular, downwards (unit: eye-to-mouth
height ``H``, the mouth-corner midpoint's distance below the eye line). The constants are read
off the standard 68-point mean face (eye centres, nose tip, jaw and chin points):

- b = midpoint of the eye midpoint and the nose tip (the nose bridge's middle);
- a, c at the nose tip's height, d, f at 1.14 H, e (chin) at 1.51 H;
- half-widths from the face midline: 1.12 D at a/c, 0.80 D at d/f; the midline is the
  mouth-corner midpoint's x (the mouth protrudes less than the nose, so it follows the face's
  centre under head turns better);
- head turn (yaw): with ``s`` = lateral nose offset from that midline over ``D``, the
  half-widths on the side the nose points to (the far, foreshortened side) are scaled by
  ``max(0.3, 1 - 2.5 |s|)``, those on the near side by ``1 + 0.5 |s|``.

A homography fitted to the six anchor pairs by least squares (``cv2.findHomography``, all points,
as MaskTheFace does) warps the template onto the image; it is then alpha-blended. When that fit
is strongly projective over the template (its denominator varies more than 2x across the
template's corners, or changes sign: the mask would smear towards a horizon, seen on tilted
faces), a least-squares affine map of the six pairs is used instead.

Channel order follows OpenCV: images are BGR, templates BGRA, colours ``(b, g, r)``.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from ._validation import as_image, as_mask, as_numeric_points, check_number
from .align import as_landmarks
from .io import IMAGE_SUFFIXES, DatasetError, read_image, read_unchanged

ANCHOR_NAMES = ("mask_a", "mask_b", "mask_c", "mask_d", "mask_e", "mask_f")
#: The config file inside a template root folder, as in MaskTheFace.
CONFIG_PATH = os.path.join("masks", "masks.cfg")
TEXTURES_PATH = os.path.join("masks", "textures")

# Face-frame anchor geometry (see the module docstring): heights in H, half-widths in D.
_CHEEK_HALF_WIDTH = 1.12
_JAW_HALF_WIDTH = 0.80
_JAW_HEIGHT = 1.14
_CHIN_HEIGHT = 1.51
_FAR_SIDE_GAIN = 2.5
_NEAR_SIDE_GAIN = 0.5
_MIN_SIDE_FACTOR = 0.3
#: With coverage c, the top anchors (a, b, c) slide down by (1 - c) * |chin - nose bridge| and
#: the bottom ones (d, e, f) by this fraction of it: the mask bunches up under the chin.
_BOTTOM_SLIDE = 0.4
#: Largest ratio of the homography's denominator across the template before falling back to affine.
_MAX_PROJECTIVE_SPREAD = 2.0
#: Relative std of the anchor jitter applied when an rng is given (in units of D).
_JITTER = 0.03

RngLike = Union[np.random.Generator, int, None]


@dataclass(frozen=True)
class MaskTemplate:
    """A mask image and its six anchors.

    Attributes
    ----------
    name : str
        The config section name (``surgical``, ``N95_left``...).
    bgra : uint8 [h, w, 4]
        Template pixels, OpenCV channel order; alpha 0 outside the mask.
    anchors : float64 [6, 2]
        ``mask_a`` .. ``mask_f`` as (x, y) in template pixels (may lie slightly outside).
    """

    name: str
    bgra: np.ndarray
    anchors: np.ndarray


def load_templates(root: str | os.PathLike[str]) -> list[MaskTemplate]:
    """Read every template of ``<root>/masks/masks.cfg`` (sections without ``template`` skipped).

    Template paths in the config are relative to ``root``. Raises DatasetError for a missing
    config, an unreadable or non-RGBA template, or a section with a template but a missing or
    malformed anchor.
    """
    root = Path(root)
    config_file = root / CONFIG_PATH
    if not config_file.is_file():
        raise DatasetError(f"mask template config not found: {str(config_file)!r}")
    parser = configparser.ConfigParser()
    try:
        parser.read(config_file, encoding="utf-8")
    except configparser.Error as err:
        raise DatasetError(f"cannot parse {str(config_file)!r}: {err}") from err
    templates = []
    for name in parser.sections():
        section = parser[name]
        if "template" not in section:
            continue
        bgra = read_unchanged(root / section["template"].strip())
        if bgra.ndim != 3 or bgra.shape[2] != 4 or bgra.dtype != np.uint8:
            raise DatasetError(
                f"template {name!r}: expected an 8-bit RGBA image, got shape {bgra.shape} "
                f"{bgra.dtype}"
            )
        anchors = np.array([_parse_anchor(section, name, key) for key in ANCHOR_NAMES])
        templates.append(MaskTemplate(name, bgra, anchors))
    return templates


def load_textures(root: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All texture images under ``<root>/masks/textures`` (recursively) as BGR, keyed by stem."""
    folder = Path(root) / TEXTURES_PATH
    if not folder.is_dir():
        raise DatasetError(f"texture folder not found: {str(folder)!r}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return {p.stem: read_image(p) for p in files}


def face_anchors(landmarks: np.ndarray) -> np.ndarray:
    """The six face points a..f (float64 [6, 2]) where the template anchors go; see the module
    docstring for the rule. ``landmarks``: [5, 2] in the masksegx order."""
    landmarks = as_landmarks(landmarks)
    frame = _FaceFrame(landmarks)
    nose_x, nose_y = frame.to_frame(landmarks[2])
    mid_x = frame.mouth_x
    yaw = (nose_x - mid_x) / frame.eye_distance
    far = max(_MIN_SIDE_FACTOR, 1.0 - _FAR_SIDE_GAIN * abs(yaw)) * frame.eye_distance
    near = (1.0 + _NEAR_SIDE_GAIN * abs(yaw)) * frame.eye_distance
    # The nose points to the far side: image left when it sits left of the midline.
    left, right = (far, near) if yaw < 0 else (near, far)
    jaw_y, chin_y = _JAW_HEIGHT * frame.height, _CHIN_HEIGHT * frame.height
    points = [
        (mid_x - _CHEEK_HALF_WIDTH * left, nose_y),
        (nose_x / 2, nose_y / 2),
        (mid_x + _CHEEK_HALF_WIDTH * right, nose_y),
        (mid_x - _JAW_HALF_WIDTH * left, jaw_y),
        (mid_x, chin_y),
        (mid_x + _JAW_HALF_WIDTH * right, jaw_y),
    ]
    return frame.to_image(np.array(points))


def estimate_face_box(landmarks: np.ndarray) -> np.ndarray:
    """An approximate face box ``[x1, y1, x2, y2]`` (float64) from 5 landmarks alone.

    For data without boxes (MTFL): the axis-aligned bounds of the face-frame rectangle
    x in midline +- 1.15 D, y from -0.85 H (above the eyes, about the brows' top) to 1.55 H
    (just under the chin), close to what MTCNN-style detectors return.
    """
    frame = _FaceFrame(as_landmarks(landmarks))
    half = 1.15 * frame.eye_distance
    corners = [
        (frame.mouth_x + dx, dy * frame.height) for dx in (-half, half) for dy in (-0.85, 1.55)
    ]
    image_corners = frame.to_image(np.array(corners))
    return np.concatenate([image_corners.min(axis=0), image_corners.max(axis=0)])


def frontal(templates: Iterable[MaskTemplate]) -> list[MaskTemplate]:
    """The templates for frontal faces (MaskTheFace's ``*_left`` / ``*_right`` side views are for
    turned heads)."""
    return [t for t in templates if not t.name.endswith(("_left", "_right"))]


def apply_mask(
    image: np.ndarray,
    landmarks: np.ndarray,
    template: MaskTemplate,
    *,
    color: tuple[float, float, float] | None = None,
    texture: np.ndarray | None = None,
    coverage: float = 1.0,
    rng: RngLike = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Put ``template`` on the face with ``landmarks`` and return ``(image, mask)``.

    Parameters
    ----------
    image : uint8 [H, W, 3], BGR
    landmarks : [5, 2]
        Left eye, right eye, nose tip, left and right mouth corner (image left/right), pixels.
    template : MaskTemplate
    color : (b, g, r) in [0, 255], optional
        Recolour: the template's luminance, divided by its 95th percentile inside the mask (so
        folds and shading stay, bright parts reach the colour), times ``color``.
    texture : uint8 [h, w, 3] BGR, optional
        Pattern tiled over the template (scaled so that ~3 repeats span its width, in template
        space so it follows the warp), shaded like ``color``. Wins over ``color`` if both given.
    coverage : float in [0, 1]
        1 = worn correctly. Below 1 the mask slides down the face: the top anchors (a, b, c) move
        by ``(1 - coverage) * |e - b|`` along the face's downward axis (|e - b| = nose bridge to
        chin), the bottom ones (d, e, f) by 0.4 times that. About 0.8 uncovers the nose tip,
        0.6 the whole nose, 0.4 also the mouth, 0 leaves the mask under the chin.
    rng : numpy Generator or int seed, optional
        None: no randomness. Otherwise the anchors are jittered (std 0.03 D each) and the
        texture's tiling phase is random; the same seed gives the same output.

    Returns
    -------
    image : uint8 [H, W, 3]
        A new image with the mask alpha-blended on; the input is not modified.
    mask : bool [H, W]
        Pixels where the warped template's alpha > 0.5.

    The mask's brightness is matched loosely to the covered skin: its colour is scaled by
    ``clip(mean grey level under the mask / 128, 0.6, 1.15)``.
    """
    image = as_image(image)
    landmarks = as_landmarks(landmarks)
    if not isinstance(template, MaskTemplate):
        raise TypeError(f"template: expected a MaskTemplate, got {type(template).__name__}")
    coverage = check_number(coverage, "coverage", low=0.0, high=1.0)
    paint_color = None if color is None else _check_color(color)
    if texture is not None:
        texture = as_image(texture, "texture")
    generator = None if rng is None else np.random.default_rng(rng)

    targets = _slide_down(face_anchors(landmarks), _FaceFrame(landmarks).down, coverage)
    if generator is not None:
        eye_distance = float(np.linalg.norm(landmarks[1] - landmarks[0]))
        targets = targets + generator.normal(0.0, _JITTER * eye_distance, targets.shape)

    bgra, anchors = _downscale_for(template, targets)
    if texture is not None or paint_color is not None:
        bgra = _repaint(bgra, paint_color, texture, generator)
    homography = _fit_warp(anchors, targets, bgra.shape[:2])
    height, width = image.shape[:2]
    warped = cv2.warpPerspective(
        bgra, homography, (width, height), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0),
    )
    alpha = warped[:, :, 3].astype(np.float32) / 255.0
    mask = alpha > 0.5
    colour = warped[:, :, :3].astype(np.float32)
    if mask.any():
        covered_grey = image[mask].astype(np.float32).mean()
        colour *= float(np.clip(covered_grey / 128.0, 0.6, 1.15))
    alpha = alpha[:, :, None]
    blended = image.astype(np.float32) * (1.0 - alpha) + np.minimum(colour, 255.0) * alpha
    return np.rint(blended).astype(np.uint8), mask


def coverage_level(mask: np.ndarray, landmarks: np.ndarray, box: np.ndarray) -> int:
    """Mask coverage level 0..10 of a face (the attribute network's label, issue 4).

    Rule: the *lower face* is the set of pixels whose centre ``(x, y)`` (integer coordinates)
    lies inside the box, ``x1 <= x < x2`` and ``y1 <= y < y2``, and strictly below the eye line
    (the line through the two eye landmarks; "below" = positive distance along the face's
    downward normal, so a tilted head keeps its own eye line). The fraction ``f`` is the share of
    lower-face pixels that are mask pixels; the level is ``floor(10 f + 0.5)`` (0.05 rounds up to
    1, 0.95 to 10). A full lower face gives 10, no mask 0; a correctly worn mask typically gives
    a middle level, since the lower face also holds the cheeks under the eyes.

    Parameters
    ----------
    mask : bool [H, W]
        The worn mask's pixels (integer 0/1 accepted).
    landmarks : [5, 2]
    box : [x1, y1, x2, y2]
        Face box in pixels (e.g. a detector's, or :func:`estimate_face_box`).

    Raises
    ------
    ValueError
        When the lower face has no pixel inside the image.
    """
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"mask: expected a numpy.ndarray, got {type(mask).__name__}")
    if mask.ndim != 2:
        raise ValueError(f"mask: expected a 2-D (H, W) array, got shape {mask.shape}")
    mask = as_mask(mask, "mask", mask.shape)
    frame = _FaceFrame(as_landmarks(landmarks))
    x1, y1, x2, y2 = _as_box(box)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box: expected x1 < x2 and y1 < y2, got {[x1, y1, x2, y2]}")
    height, width = mask.shape
    cols = np.arange(max(0, int(np.ceil(x1))), min(width, int(np.ceil(x2))))
    rows = np.arange(max(0, int(np.ceil(y1))), min(height, int(np.ceil(y2))))
    if cols.size == 0 or rows.size == 0:
        raise ValueError("box: does not overlap the image")
    # Signed distance of each pixel centre below the eye line.
    depth = (cols[None, :] - frame.origin[0]) * frame.down[0]
    depth = depth + (rows[:, None] - frame.origin[1]) * frame.down[1]
    lower_face = depth > 0
    total = int(lower_face.sum())
    if total == 0:
        raise ValueError("box: no pixel of the box lies below the eye line")
    covered = int((mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] & lower_face).sum())
    return int(np.floor(10.0 * covered / total + 0.5))


class _FaceFrame:
    """Face coordinates: origin at the eye midpoint, x along the eyes, y down the face."""

    def __init__(self, landmarks: np.ndarray) -> None:
        self.origin = (landmarks[0] + landmarks[1]) / 2
        across = landmarks[1] - landmarks[0]
        self.eye_distance = float(np.linalg.norm(across))
        if self.eye_distance < 1e-6:
            raise ValueError("landmarks: the two eyes coincide")
        self.across = across / self.eye_distance
        # y grows downwards in images, so rotating "across" by +90 degrees points down the face.
        self.down = np.array([-self.across[1], self.across[0]])
        self.mouth_x, self.height = self.to_frame((landmarks[3] + landmarks[4]) / 2)
        if self.height <= 0.1 * self.eye_distance:
            raise ValueError("landmarks: the mouth is not below the eye line")

    def to_frame(self, point: np.ndarray) -> tuple[float, float]:
        offset = point - self.origin
        return float(offset @ self.across), float(offset @ self.down)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        image_points: np.ndarray = self.origin + points[:, :1] * self.across + points[:, 1:] * self.down
        return image_points


def _parse_anchor(section: configparser.SectionProxy, name: str, key: str) -> tuple[float, float]:
    if key not in section:
        raise DatasetError(f"template {name!r}: anchor {key} missing")
    try:
        x, y = (float(v) for v in section[key].split(","))
    except ValueError as err:
        raise DatasetError(
            f"template {name!r}: {key} must be 'x, y', got {section[key]!r}"
        ) from err
    return x, y


def _slide_down(targets: np.ndarray, down: np.ndarray, coverage: float) -> np.ndarray:
    slide = (1.0 - coverage) * float(np.linalg.norm(targets[4] - targets[1]))
    shifted = targets.copy()
    shifted[:3] += slide * down
    shifted[3:] += _BOTTOM_SLIDE * slide * down
    return shifted


def _fit_warp(anchors: np.ndarray, targets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """3x3 map template -> image: the least-squares homography, or an affine fit if the
    homography is strongly projective over the template (see the module docstring)."""
    homography, _ = cv2.findHomography(anchors, targets, 0)
    if homography is not None:
        height, width = shape
        corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], float)
        denominators = corners @ homography[2]
        if denominators.min() * denominators.max() > 0:
            spread = np.abs(denominators).max() / np.abs(denominators).min()
            if spread <= _MAX_PROJECTIVE_SPREAD:
                return homography
    design = np.hstack([anchors, np.ones((len(anchors), 1))])
    affine, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return np.vstack([affine.T, [0.0, 0.0, 1.0]])


def _downscale_for(template: MaskTemplate, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # warpPerspective only interpolates bilinearly: shrinking a 600 px template onto a 60 px face
    # would alias its edges, so area-downscale it to about twice the target size first.
    template_width = np.ptp(template.anchors[:, 0])
    target_width = np.linalg.norm(targets[2] - targets[0])
    factor = 2.0 * target_width / max(template_width, 1.0)
    if factor >= 1.0:
        return template.bgra, template.anchors
    height, width = template.bgra.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(template.bgra, size, interpolation=cv2.INTER_AREA)
    scale = np.array([size[0] / width, size[1] / height])
    return small, template.anchors * scale


def _repaint(
    bgra: np.ndarray,
    color: np.ndarray | None,
    texture: np.ndarray | None,
    generator: np.random.Generator | None,
) -> np.ndarray:
    luminance = cv2.cvtColor(bgra[:, :, :3], cv2.COLOR_BGR2GRAY).astype(np.float32)
    inside = bgra[:, :, 3] > 127
    reference = np.percentile(luminance[inside], 95) if inside.any() else 255.0
    shading = np.minimum(luminance / max(float(reference), 1.0), 1.0)[:, :, None]
    if texture is not None:
        paint = _tile(texture, bgra.shape[:2], generator).astype(np.float32)
    else:
        assert color is not None  # the caller passes a colour or a texture
        paint = np.broadcast_to(color.astype(np.float32), bgra.shape[:2] + (3,))
    out = bgra.copy()
    out[:, :, :3] = np.rint(paint * shading).astype(np.uint8)
    return out


def _tile(
    texture: np.ndarray, shape: tuple[int, int], generator: np.random.Generator | None
) -> np.ndarray:
    height, width = shape
    tile_width = max(1, width // 3)
    tile_height = max(1, round(texture.shape[0] * tile_width / texture.shape[1]))
    tile = cv2.resize(texture, (tile_width, tile_height), interpolation=cv2.INTER_AREA)
    dy, dx = (0, 0) if generator is None else (
        int(generator.integers(tile_height)), int(generator.integers(tile_width))
    )
    reps = (height + dy) // tile_height + 1, (width + dx) // tile_width + 1
    tiled: np.ndarray = np.tile(tile, reps + (1,))[dy : dy + height, dx : dx + width]
    return tiled


def _as_box(box: object) -> np.ndarray:
    if not isinstance(box, (np.ndarray, list, tuple)):
        raise TypeError(f"box: expected [x1, y1, x2, y2], got {type(box).__name__}")
    values = np.asarray(as_numeric_points(box, "box"), dtype=np.float64)
    if values.shape != (4,) or not np.isfinite(values).all():
        raise ValueError(f"box: expected 4 finite numbers [x1, y1, x2, y2], got {box!r}")
    return values


def _check_color(color: object) -> np.ndarray:
    values = np.asarray(as_numeric_points(color, "color"), dtype=np.float64)
    in_range = np.isfinite(values).all() and (values >= 0).all() and (values <= 255).all()
    if values.shape != (3,) or not in_range:
        raise ValueError(f"color: expected (b, g, r) with values in [0, 255], got {color!r}")
    return values
