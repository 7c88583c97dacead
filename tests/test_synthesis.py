import cv2
import numpy as np
import pytest

from masksegx import synthesis
from masksegx.eval.datasets import DatasetError
from masksegx.synthesis import (
    MaskTemplate,
    apply_mask,
    coverage_level,
    estimate_face_box,
    face_anchors,
    load_templates,
    load_textures,
)

# A frontal face in a 200x200 image: inter-ocular distance 40, eye-to-mouth height 45.
LANDMARKS = np.array([[80, 80], [120, 80], [100, 102], [85, 125], [115, 125]], dtype=np.float64)
EYE_Y, NOSE, MOUTH = 80, (100, 102), (100, 125)
# Hexagon anchors a..f of the drawn template (x, y): the template is the hexagon a-b-c-f-e-d.
ANCHORS = np.array([[10, 30], [70, 8], [130, 30], [25, 90], [70, 115], [115, 90]], dtype=np.float64)


def _template_image():
    bgra = np.zeros((124, 140, 4), np.uint8)
    hexagon = ANCHORS[[0, 1, 2, 5, 4, 3]].astype(np.int32)
    cv2.fillPoly(bgra, [hexagon], (230, 230, 230, 255))
    bgra[40:60, :, :3] = 200  # a fold, so recolouring has some shading to keep
    return bgra


@pytest.fixture
def template():
    return MaskTemplate("hexagon", _template_image(), ANCHORS.copy())


@pytest.fixture
def face(rng):
    return rng.integers(60, 200, (200, 200, 3), dtype=np.uint8)


def _write_root(root, sections):
    (root / "masks" / "templates").mkdir(parents=True)
    cv2.imwrite(str(root / "masks" / "templates" / "hexagon.png"), _template_image())
    cv2.imwrite(str(root / "masks" / "templates" / "opaque.png"), np.zeros((10, 10, 3), np.uint8))
    (root / "masks" / "masks.cfg").write_text(sections)


CONFIG = """
[hexagon]
template:   masks/templates/hexagon.png
mask_c:     130, 30
mask_a:     10, 30
mask_b:     70, 8
mask_d:     25, 90
mask_e:     70, 115
mask_f:     115, 90

;[commented]
;template: masks/templates/missing.png

[empty]
[inpaint_left]
"""


def test_load_templates_parses_the_config(tmp_path):
    _write_root(tmp_path, CONFIG)
    templates = load_templates(tmp_path)
    assert [t.name for t in templates] == ["hexagon"]
    np.testing.assert_array_equal(templates[0].anchors, ANCHORS)
    np.testing.assert_array_equal(templates[0].bgra, _template_image())


@pytest.mark.parametrize(
    "config, message",
    [
        ("[x]\ntemplate: masks/templates/hexagon.png\nmask_a: 1, 2\n", "mask_b missing"),
        (CONFIG.replace("mask_e:     70, 115", "mask_e:     70"), "mask_e must be"),
        (CONFIG.replace("hexagon.png", "opaque.png"), "RGBA"),
        (CONFIG.replace("hexagon.png", "missing.png"), "cannot read"),
    ],
)
def test_load_templates_rejects_bad_configs(tmp_path, config, message):
    _write_root(tmp_path, config)
    with pytest.raises(DatasetError, match=message):
        load_templates(tmp_path)


def test_load_templates_and_textures_need_their_folders(tmp_path):
    with pytest.raises(DatasetError, match="config not found"):
        load_templates(tmp_path)
    with pytest.raises(DatasetError, match="texture folder"):
        load_textures(tmp_path)


def test_load_textures(tmp_path):
    folder = tmp_path / "masks" / "textures" / "check"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "check_1.png"), np.full((8, 6, 3), 9, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    textures = load_textures(tmp_path)
    assert list(textures) == ["check_1"] and textures["check_1"].shape == (8, 6, 3)


def test_face_anchors_are_symmetric_and_ordered():
    points = face_anchors(LANDMARKS)
    a, b, c, d, e, f = points
    np.testing.assert_allclose(a[0] + c[0], 200)  # mirror pair around x = 100
    np.testing.assert_allclose(d[0] + f[0], 200)
    assert b[0] == e[0] == 100
    assert EYE_Y < b[1] < NOSE[1] == a[1] == c[1] < MOUTH[1] < d[1] == f[1] < e[1]


def test_face_anchors_follow_head_turn():
    turned = LANDMARKS.copy()
    turned[2, 0] -= 8  # nose towards the image left: the left half is the far side
    a, _, c, d, _, f = face_anchors(turned)
    assert 100 - a[0] < c[0] - 100 and 100 - d[0] < f[0] - 100


def test_face_anchors_rotate_with_the_face():
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rotated = (LANDMARKS - 100) @ rotation.T + 100
    expected = (face_anchors(LANDMARKS) - 100) @ rotation.T + 100
    np.testing.assert_allclose(face_anchors(rotated), expected)


def test_apply_mask_covers_the_lower_face(face, template):
    original = face.copy()
    out, mask = apply_mask(face, LANDMARKS, template)
    assert out.shape == face.shape and out.dtype == np.uint8 and mask.dtype == np.bool_
    np.testing.assert_array_equal(face, original)  # input untouched
    ys, xs = np.nonzero(mask)
    assert ys.min() > EYE_Y
    x1, y1, x2, y2 = estimate_face_box(LANDMARKS)
    assert x1 <= xs.min() and xs.max() <= x2 and ys.max() <= y2
    assert mask[NOSE[1], NOSE[0]] and mask[MOUTH[1], MOUTH[0]]
    # Outside the template's soft edge the image is unchanged.
    far = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    np.testing.assert_array_equal(out[far], face[far])
    assert np.abs(out[mask].astype(int) - face[mask]).mean() > 10


def test_coverage_slides_the_mask_down(face, template):
    box = estimate_face_box(LANDMARKS)
    levels, tops = [], []
    for coverage in (1.0, 0.8, 0.6, 0.4, 0.2, 0.0):
        _, mask = apply_mask(face, LANDMARKS, template, coverage=coverage)
        levels.append(coverage_level(mask, LANDMARKS, box))
        tops.append(np.nonzero(mask)[0].min())
        if coverage == 0.6:  # documented: the nose is uncovered, the mouth still covered
            assert not mask[NOSE[1], NOSE[0]] and mask[MOUTH[1], MOUTH[0]]
    assert levels == sorted(levels, reverse=True) and levels[0] > levels[-1]
    assert tops == sorted(tops)


def test_apply_mask_is_deterministic_for_a_seed(face, template):
    texture = np.random.default_rng(5).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    first = apply_mask(face, LANDMARKS, template, texture=texture, rng=7)
    again = apply_mask(face, LANDMARKS, template, texture=texture, rng=np.random.default_rng(7))
    other = apply_mask(face, LANDMARKS, template, texture=texture, rng=8)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    plain = [apply_mask(face, LANDMARKS, template) for _ in range(2)]
    np.testing.assert_array_equal(plain[0][0], plain[1][0])


def test_recolour_and_texture_keep_the_mask_shape(face, template):
    _, plain = apply_mask(face, LANDMARKS, template)
    red, mask = apply_mask(face, LANDMARKS, template, color=(20, 20, 220))
    np.testing.assert_array_equal(mask, plain)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    mean_bgr = red[inner].mean(axis=0)
    assert mean_bgr[2] > 3 * mean_bgr[0]
    green_texture = np.zeros((16, 16, 3), np.uint8)
    green_texture[..., 1] = 200
    textured, mask = apply_mask(face, LANDMARKS, template, texture=green_texture, color=(0, 0, 255))
    np.testing.assert_array_equal(mask, plain)
    mean_bgr = textured[inner].mean(axis=0)
    assert mean_bgr[1] > 3 * max(mean_bgr[0], mean_bgr[2])


def test_coverage_level_extremes_and_rule():
    box = np.array([50.0, 40.0, 150.0, 160.0])
    empty = np.zeros((200, 200), bool)
    assert coverage_level(empty, LANDMARKS, box) == 0
    full = np.zeros((200, 200), bool)
    full[EYE_Y + 1 :, :] = True  # everything strictly below the eye line
    assert coverage_level(full, LANDMARKS, box) == 10
    assert coverage_level(np.ones((200, 200), np.uint8), LANDMARKS, box) == 10
    # Lower face rows 81..159 = 79 rows; covering 32 of them is 0.405 -> 4, 36 is 0.456 -> 5.
    part = np.zeros((200, 200), bool)
    part[81 : 81 + 32] = True
    assert coverage_level(part, LANDMARKS, box) == 4
    part[81 : 81 + 36] = True
    assert coverage_level(part, LANDMARKS, box) == 5
    # Pixels above the eye line or outside the box never count.
    outside = np.ones((200, 200), bool)
    outside[EYE_Y + 1 :, 50:150] = False
    assert coverage_level(outside, LANDMARKS, box) == 0


def test_coverage_level_uses_the_tilted_eye_line():
    tilted = LANDMARKS.copy()
    tilted[1, 1] = 120  # right eye lower: the eye line falls to the right
    mask = np.zeros((200, 200), bool)
    mask[81:100, 100:150] = True  # below the horizontal line y=80 but mostly above the tilted one
    box = np.array([50.0, 40.0, 150.0, 160.0])
    assert coverage_level(mask, tilted, box) < coverage_level(mask, LANDMARKS, box)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(coverage=1.5), ValueError, "coverage"),
        (dict(coverage=-0.1), ValueError, "coverage"),
        (dict(color=(0, 0)), ValueError, "color"),
        (dict(color=(0, 0, 300)), ValueError, "color"),
        (dict(texture=np.zeros((4, 4), np.uint8)), ValueError, "texture"),
        (dict(texture=np.zeros((4, 4, 3), np.float32)), TypeError, "texture"),
    ],
)
def test_apply_mask_rejects_bad_options(face, template, kwargs, error, match):
    with pytest.raises(error, match=match):
        apply_mask(face, LANDMARKS, template, **kwargs)


def test_apply_mask_rejects_bad_inputs(face, template):
    with pytest.raises(TypeError, match="image"):
        apply_mask(face.astype(np.float32), LANDMARKS, template)
    with pytest.raises(ValueError, match="landmarks"):
        apply_mask(face, LANDMARKS[:4], template)
    with pytest.raises(ValueError, match="landmarks"):
        apply_mask(face, np.where(np.eye(5, 2, dtype=bool), np.nan, LANDMARKS), template)
    upside_down = LANDMARKS.copy()
    upside_down[3:, 1] = 60
    with pytest.raises(ValueError, match="mouth"):
        apply_mask(face, upside_down, template)
    with pytest.raises(TypeError, match="template"):
        apply_mask(face, LANDMARKS, "surgical")


def test_coverage_level_rejects_bad_inputs():
    mask = np.zeros((200, 200), bool)
    with pytest.raises(ValueError, match="box"):
        coverage_level(mask, LANDMARKS, np.array([0, 0, 10]))
    with pytest.raises(ValueError, match="box"):
        coverage_level(mask, LANDMARKS, np.array([10, 0, 5, 10]))
    with pytest.raises(ValueError, match="box"):
        coverage_level(mask, LANDMARKS, np.array([300, 300, 400, 400]))
    with pytest.raises(TypeError, match="box"):
        coverage_level(mask, LANDMARKS, "0 0 10 10")
    with pytest.raises(ValueError, match="eye line"):
        coverage_level(mask, LANDMARKS, np.array([0, 0, 200, 50]))
    with pytest.raises(TypeError, match="mask"):
        coverage_level(mask.astype(np.float32), LANDMARKS, np.array([0, 0, 200, 200]))
    with pytest.raises(ValueError, match="mask"):
        coverage_level(np.zeros((2, 2, 2), bool), LANDMARKS, np.array([0, 0, 200, 200]))


def test_module_exported():
    import masksegx

    assert masksegx.synthesis is synthesis
