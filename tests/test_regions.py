import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from masksegx import regions
from reference import component_stats_ref, fill_holes_ref, label_ref


@st.composite
def random_masks(draw):
    """Masks of any density (hypothesis' own arrays are mostly the fill value)."""
    h, w = draw(st.integers(1, 30)), draw(st.integers(1, 70))
    density = draw(st.floats(0.0, 1.0))
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random((h, w)) < density


masks = st.one_of(
    arrays(np.bool_, st.tuples(st.integers(1, 24), st.integers(1, 24))), random_masks()
)
connectivities = st.sampled_from([4, 8])


def checkerboard(h, w, cell=1):
    y, x = np.indices((h, w))
    return ((y // cell + x // cell) % 2).astype(bool)


EDGE_MASKS = {
    "1x1 false": np.zeros((1, 1), bool),
    "1x1 true": np.ones((1, 1), bool),
    "all false": np.zeros((7, 9), bool),
    "all true": np.ones((7, 9), bool),
    "row": np.array([[1, 1, 0, 1, 0, 0, 1, 1, 1]], bool),
    "column": np.array([[1], [0], [1], [1], [0]], bool),
    "checkerboard": checkerboard(9, 11),
    "checkerboard 2": checkerboard(12, 10, cell=2),
    "diagonal": np.eye(6, dtype=bool),
    "anti-diagonal": np.eye(6, dtype=bool)[::-1],
    "long rows": np.tile(np.array([[1] * 20 + [0] * 3 + [1] * 17], bool), (3, 1)),
}


def assert_analysis_matches(mask, connectivity, variance=None):
    comps = regions.analyze(mask, variance, connectivity=connectivity)
    labels, count = label_ref(mask, connectivity)
    np.testing.assert_array_equal(comps.labels, labels)
    assert comps.count == count
    area, bbox, diagonal, mi, eps, po = component_stats_ref(labels, count, variance)
    np.testing.assert_array_equal(comps.area, area)
    np.testing.assert_array_equal(comps.bbox, bbox)
    np.testing.assert_allclose(comps.diagonal, diagonal, rtol=1e-12)
    np.testing.assert_allclose(comps.mi, mi, rtol=1e-12)
    np.testing.assert_allclose(comps.mean_variance, eps, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(comps.po, po, rtol=1e-9, atol=1e-12)
    return comps


@settings(max_examples=150, deadline=None)
@given(masks, connectivities)
def test_label_matches_bfs_reference(mask, connectivity):
    labels, count = regions.label(mask, connectivity=connectivity)
    ref_labels, ref_count = label_ref(mask, connectivity)
    assert labels.dtype == np.int32 and count == ref_count
    np.testing.assert_array_equal(labels, ref_labels)


@settings(max_examples=80, deadline=None)
@given(masks, connectivities, st.integers(0, 2**32 - 1))
def test_analyze_matches_reference(mask, connectivity, seed):
    variance = np.random.default_rng(seed).random(mask.shape, dtype=np.float32) * 50
    assert_analysis_matches(mask, connectivity, variance)


@pytest.mark.parametrize("name", list(EDGE_MASKS))
@pytest.mark.parametrize("connectivity", [4, 8])
def test_edge_masks(name, connectivity):
    mask = EDGE_MASKS[name]
    variance = np.linspace(0, 1, mask.size, dtype=np.float32).reshape(mask.shape)
    comps = assert_analysis_matches(mask, connectivity, variance)
    assert comps.area.shape == (comps.count,) and comps.bbox.shape == (comps.count, 4)
    np.testing.assert_array_equal(fill_holes_ref(mask), regions.fill_holes(mask))


def test_checkerboard_counts():
    board = checkerboard(8, 8)
    assert regions.label(board, connectivity=8)[1] == 1
    assert regions.label(board, connectivity=4)[1] == 32


def test_known_scores():
    mask = np.zeros((6, 8), bool)
    mask[1:3, 1:4] = True  # 3x2 block, area 6
    mask[5, 0:8] = True  # 8x1 line, area 8
    variance = np.zeros(mask.shape, np.float32)
    variance[1:3, 1:4] = 3.0
    comps = regions.analyze(mask, variance)
    assert comps.count == 2
    np.testing.assert_array_equal(comps.area, [6, 8])
    np.testing.assert_array_equal(comps.bbox, [[1, 1, 3, 2], [0, 5, 8, 1]])
    np.testing.assert_allclose(comps.diagonal, [np.sqrt(13), np.sqrt(65)])
    np.testing.assert_allclose(comps.mi, [13 / 6, 65 / 8])
    np.testing.assert_allclose(comps.mean_variance, [3.0, 0.0])
    np.testing.assert_allclose(comps.po, [8 / 6 * 3.0, 0.0])
    assert regions.analyze(np.ones((1, 1), bool)).mi[0] == 2.0


def test_without_variance_eps_and_po_are_zero():
    comps = regions.analyze(EDGE_MASKS["checkerboard 2"], connectivity=4)
    assert comps.count > 1
    assert not comps.mean_variance.any() and not comps.po.any()


def test_empty_mask_gives_empty_stats():
    comps = regions.analyze(np.zeros((5, 4), bool), np.ones((5, 4), np.float32))
    assert comps.count == 0 and comps.labels.max() == 0
    assert comps.bbox.shape == (0, 4) and comps.po.shape == (0,)
    assert not comps.select(np.zeros(0, bool)).any()
    assert regions.geometric_filter(comps, 3.0, 1.0).shape == (0,)


@settings(max_examples=60, deadline=None)
@given(masks, connectivities)
def test_areas_and_boxes_match_opencv(mask, connectivity):
    comps = regions.analyze(mask, connectivity=connectivity)
    n, cv_labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.view(np.uint8), connectivity=connectivity, ltype=cv2.CV_32S
    )
    assert comps.count == n - 1
    # OpenCV's default 8-connected scan may number components in another order: match them
    # through the pixels they share.
    ours_of_theirs = np.zeros(n, np.int64)
    ours_of_theirs[cv_labels.ravel()] = comps.labels.ravel()
    np.testing.assert_array_equal(ours_of_theirs[cv_labels], comps.labels)
    order = ours_of_theirs[1:] - 1
    np.testing.assert_array_equal(comps.area[order], stats[1:, cv2.CC_STAT_AREA])
    np.testing.assert_array_equal(comps.bbox[order], stats[1:, :4])


@settings(max_examples=40, deadline=None)
@given(masks, connectivities)
def test_numbering_matches_opencv_raster_scan(mask, connectivity):
    n, cv_labels = cv2.connectedComponentsWithAlgorithm(
        mask.view(np.uint8), connectivity, cv2.CV_32S, cv2.CCL_WU
    )
    labels, count = regions.label(mask, connectivity=connectivity)
    assert count == n - 1
    np.testing.assert_array_equal(labels, cv_labels)


@settings(max_examples=100, deadline=None)
@given(masks)
def test_fill_holes_matches_reference(mask):
    filled = regions.fill_holes(mask)
    assert filled.dtype == np.bool_
    np.testing.assert_array_equal(filled, fill_holes_ref(mask))


def test_fill_holes_examples():
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    ring[3, 3] = True  # an island inside the hole stays foreground
    filled = regions.fill_holes(ring)
    expected = np.zeros((7, 7), bool)
    expected[1:6, 1:6] = True
    np.testing.assert_array_equal(filled, expected)
    # A hole touching the border is not a hole; a diagonal-only gap does not leak.
    open_ring = ring.copy()
    open_ring[3, 1] = False
    open_ring[3, 0] = False
    assert not regions.fill_holes(open_ring)[2, 2]
    diamond = np.array(
        [[0, 0, 1, 0, 0], [0, 1, 0, 1, 0], [1, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 0, 1, 0, 0]], bool
    )
    assert regions.fill_holes(diamond)[2, 2]
    assert not regions.fill_holes(diamond)[0, 0]


def test_geometric_filter_rule():
    mask = np.zeros((20, 20), bool)
    mask[2:10, 2:10] = True  # big smooth square: kept
    mask[15, 0:20] = True  # thin line: Mi = (400 + 1) / 20 > 3, rejected
    mask[18:20, 17:19] = True  # small textured square: Po = 64/4 * 2 = 32 > 10, rejected
    mask[12:13, 12:13] = True  # single pixel, smooth: Mi = 2, Po = 0, kept
    variance = np.zeros(mask.shape, np.float32)
    variance[18:20, 17:19] = 2.0
    comps = regions.analyze(mask, variance)
    keep = regions.geometric_filter(comps, 3.0, 10.0)
    by_label = {int(comps.labels[y, x]): keep[comps.labels[y, x] - 1]
                for y, x in [(2, 2), (15, 0), (18, 17), (12, 12)]}
    assert by_label == {1: True, 3: False, 4: False, 2: True}
    np.testing.assert_array_equal(keep, ~((comps.mi > 3.0) | (comps.po > 10.0)))
    selected = comps.select(keep)
    expected = np.zeros_like(mask)
    expected[2:10, 2:10] = True
    expected[12, 12] = True
    np.testing.assert_array_equal(selected, expected)


@settings(max_examples=40, deadline=None)
@given(masks, st.integers(0, 2**32 - 1))
def test_select_is_union_of_kept_components(mask, seed):
    comps = regions.analyze(mask)
    keep = np.random.default_rng(seed).random(comps.count) < 0.5
    expected = np.isin(comps.labels, np.flatnonzero(keep) + 1)
    np.testing.assert_array_equal(comps.select(keep), expected)


def test_results_are_read_only():
    comps = regions.analyze(np.ones((3, 3), bool))
    with pytest.raises(ValueError):
        comps.area[0] = 1
    with pytest.raises(AttributeError):
        comps.count = 2


def test_integer_and_non_contiguous_masks_are_accepted():
    mask = checkerboard(10, 12, cell=3)
    expected = regions.label(mask)[0]
    np.testing.assert_array_equal(regions.label(mask.astype(np.uint8))[0], expected)
    np.testing.assert_array_equal(regions.label(mask.astype(np.int64) * 7)[0], expected)
    wide = np.repeat(mask, 2, axis=1)
    np.testing.assert_array_equal(regions.label(wide[:, ::2])[0], expected)
    variance = np.arange(mask.size, dtype=np.float64).reshape(mask.shape)
    a = regions.analyze(mask, variance)
    b = regions.analyze(mask, np.asfortranarray(variance.astype(np.float32)))
    np.testing.assert_array_equal(a.mean_variance, b.mean_variance)


def test_bool_bytes_other_than_one_count_as_true(rng):
    raw = rng.integers(0, 4, (9, 37), dtype=np.uint8) * 85  # bytes 0, 85, 170, 255
    mask = raw.view(np.bool_)
    expected = raw != 0
    np.testing.assert_array_equal(regions.label(mask)[0], label_ref(expected)[0])
    np.testing.assert_array_equal(regions.fill_holes(mask), fill_holes_ref(expected))


@pytest.mark.parametrize(
    "bad, exc, words",
    [
        (np.zeros((4, 4), np.float32), TypeError, "bool"),
        (np.zeros((4, 4, 2), bool), ValueError, "2-D"),
        (np.zeros((4,), bool), ValueError, "2-D"),
        (np.zeros((0, 4), bool), ValueError, "empty"),
        ([[True, False]], TypeError, "numpy.ndarray"),
    ],
)
def test_bad_masks_raise(bad, exc, words):
    for call in (regions.label, regions.analyze, regions.fill_holes):
        with pytest.raises(exc, match="mask") as info:
            call(bad)
        assert words in str(info.value)


def test_bad_arguments_raise():
    mask = np.ones((4, 5), bool)
    for connectivity in (0, 6, "8"):
        with pytest.raises(ValueError, match="connectivity"):
            regions.label(mask, connectivity=connectivity)
        with pytest.raises(ValueError, match="connectivity"):
            regions.analyze(mask, connectivity=connectivity)
    with pytest.raises(ValueError, match="variance"):
        regions.analyze(mask, np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match="variance"):
        regions.analyze(mask, np.full((4, 5), np.nan, np.float32))
    with pytest.raises(TypeError, match="variance"):
        regions.analyze(mask, np.ones((4, 5), "U1"))
    comps = regions.analyze(mask)
    for p1, p2 in [(0.0, 1.0), (1.0, -1.0), (np.inf, 1.0), (1.0, np.nan)]:
        with pytest.raises(ValueError, match="p1" if p1 != 1.0 else "p2"):
            regions.geometric_filter(comps, p1, p2)
    with pytest.raises(TypeError, match="keep"):
        comps.select(np.ones(1, np.uint8))
    with pytest.raises(ValueError, match="keep"):
        comps.select(np.ones(2, bool))


def test_core_rejects_what_the_wrapper_would_convert():
    from masksegx import _core

    with pytest.raises(TypeError, match="dtype"):
        _core.label_components(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="contiguous"):
        _core.fill_holes(np.zeros((4, 8), bool)[:, ::2])
    with pytest.raises(ValueError, match="connectivity"):
        _core.analyze_components(np.zeros((4, 4), bool), None, 6)
    with pytest.raises(ValueError, match="variance"):
        _core.analyze_components(np.zeros((4, 4), bool), np.zeros((4, 3), np.float32))
