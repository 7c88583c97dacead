"""Coverage-guided fuzzing (atheris) of every public kernel and of the C++ bindings under them.

Each input picks one function and decodes the rest of the bytes into its arguments
(fuzz/_inputs.py). A bad argument must raise TypeError or ValueError naming the problem;
anything else (another exception, a crash, a sanitizer report) is a finding.

    python fuzz/fuzz_kernels.py -max_total_time=60 [corpus_dir]

Run it against the sanitizer build (.ci/ci-fuzz does) so that memory errors in the C++
kernels abort at once instead of passing silently.
"""

from __future__ import annotations

import os
import sys

import atheris
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _inputs import Inputs  # noqa: E402

with atheris.instrument_imports(include=["masksegx"]):
    from masksegx import _core, color, compensate, fcm, filters, nms, nn, regions, rle

EXPECTED = (TypeError, ValueError)
np.seterr(all="ignore")  # overflow in the harness' own arithmetic on random floats
U8 = np.uint8
F32 = np.float32


def _image(g: Inputs):
    return g.array(3, U8, fixed={2: 3})


def _region(g: Inputs, image):
    shape = image.shape[:2] if getattr(image, "ndim", 0) >= 2 else (2, 2)
    return g.array(2, np.bool_, fixed={0: shape[0], 1: shape[1]})


def _order(g: Inputs):
    return g.choice(("bgr", "rgb", "bgr", "hsv"))


def _rle(g: Inputs):
    size = [g.int(0, 6), g.int(0, 6)]
    counts = g.fdp.ConsumeUnicodeNoSurrogates(g.fdp.ConsumeIntInRange(0, 12))
    return g.choice(({"size": size, "counts": counts}, {"size": size}, {"counts": counts},
                     {"size": counts, "counts": size}, [size, counts]))


def _max_iter(g: Inputs):
    """Iterations: small, or out of range. A valid huge count with tol=0 runs that long, as
    documented, so it is no finding."""
    return g.choice((g.rank(0, 30), -1, 2**31, 2**63, 2.5))


def _components(g: Inputs):
    mask = g.array(2, np.bool_)
    variance = g.array(2, F32, fixed={0: mask.shape[0] if mask.ndim else 1}) if g.flag() else None
    return regions.analyze(mask, variance, connectivity=g.choice((4, 8, 6)))


TARGETS = [
    # Public wrappers.
    lambda g: color.spectral_maps(_image(g), order=_order(g), with_hsi=g.flag()),
    lambda g: color.rgb_to_hsi(_image(g), order=_order(g)),
    lambda g: color.nbri(_image(g)),
    lambda g: color.nmri(_image(g), order=_order(g)),
    lambda g: compensate.blue_suppression(*(lambda i: (i, _region(g, i)))(_image(g)), g.float(0, 2),
                                          order=_order(g)),
    lambda g: compensate.minkowski_illuminant(*(lambda i: (i, _region(g, i)))(_image(g)),
                                              g.float(0, 10), scale=g.float(0, 2)),
    lambda g: compensate.gray_world_minkowski(*(lambda i: (i, _region(g, i)))(_image(g)),
                                              g.float(0, 10), order=_order(g)),
    lambda g: compensate.compensate_region(*(lambda i: (i, _region(g, i)))(_image(g)),
                                           mu=g.float(0, 2), t=g.float(0, 10),
                                           strength=g.float(-2, 2), order=_order(g)),
    lambda g: filters.local_variance(g.array(2, g.choice((U8, F32))), g.int(0, 11)),
    lambda g: regions.label(g.array(2, np.bool_), connectivity=g.choice((4, 8, 0))),
    lambda g: regions.fill_holes(g.array(2, g.choice((np.bool_, U8)))),
    lambda g: regions.geometric_filter(_components(g), g.float(0, 10), g.float(0, 2)),
    lambda g: _components(g).select(g.array(1, np.bool_)),
    lambda g: fcm.fuzzy_cmeans(g.array(2, F32), g.int(0, 5), m=g.float(1, 4), tol=g.float(0, 1),
                               max_iter=_max_iter(g), seed=g.int(0, 9),
                               init_centers=g.array(2, F32) if g.flag() else None),
    lambda g: fcm.seed_centers(g.array(2, F32), g.int(0, 5), seed=g.int(0, 99)),
    lambda g: nn.conv2d(g.array(4, F32, max_side=6), g.array(4, F32, max_side=4),
                        g.array(1, F32) if g.flag() else None, stride=g.int(1, 3),
                        padding=g.int(0, 3), groups=g.int(1, 4),
                        slope=g.array(1, F32) if g.flag() else None),
    lambda g: nn.resize_area(g.array(3, F32), g.array(2, np.int64, fixed={1: 4}),
                             g.choice((g.int(1, 12), (g.int(1, 12), g.int(1, 12))))),
    lambda g: nn.max_pool2d(g.array(4, F32, max_side=7), g.int(1, 4),
                            g.int(1, 3) if g.flag() else None),
    lambda g: nn.prelu(g.array(g.rank(2, 4), F32, max_side=5), g.array(1, F32)),
    lambda g: nn.relu(g.array(g.rank(1, 4), F32, max_side=5)),
    lambda g: nn.fully_connected(g.array(2, F32), g.array(2, F32),
                                 g.array(1, F32) if g.flag() else None),
    lambda g: nn.softmax(g.array(g.rank(1, 4), F32, max_side=5), g.int(-5, 5)),
    lambda g: nms.nms(g.array(2, F32, fixed={1: 4}), g.array(1, F32), g.float(0, 1),
                      mode=g.choice(("union", "min", "x"))),
    lambda g: rle.decode(_rle(g)),
    lambda g: rle.decode(rle.encode(g.array(2, g.choice((np.bool_, U8, F32))))),
    # The bindings directly: they must hold on their own, without the wrappers' checks.
    lambda g: _core.spectral_maps(_image(g), _order(g), g.flag()),
    lambda g: _core.compensate_region(*(lambda i: (i, _region(g, i)))(_image(g)), g.float(0, 2),
                                      g.float(-2, 10), g.float(-2, 2), _order(g)),
    lambda g: _core.minkowski_illuminant(*(lambda i: (i, _region(g, i)))(_image(g)),
                                         g.float(-2, 10), g.float(-1, 2)),
    lambda g: _core.local_variance(g.array(2, g.choice((U8, F32))), g.int(-3, 11)),
    lambda g: _core.analyze_components(g.array(2, np.bool_), g.array(2, F32) if g.flag() else None,
                                       g.int(3, 9)),
    lambda g: _core.fuzzy_cmeans(g.array(2, F32), g.int(-1, 5), g.float(0, 4), g.float(-1, 1),
                                 _max_iter(g), g.int(0, 9), g.array(2, F32) if g.flag() else None),
    lambda g: _core.fcm_seed_centers(g.array(2, F32), g.int(-1, 5), g.int(0, 9)),
    lambda g: _core.conv2d(g.array(4, F32, max_side=6), g.array(4, F32, max_side=4),
                           g.array(1, F32) if g.flag() else None, (g.int(-1, 3), g.int(-1, 3)),
                           (g.int(-1, 3), g.int(-1, 3)), g.int(-1, 4),
                           g.array(1, F32) if g.flag() else None,
                           g.array(4, F32, max_side=6) if g.flag() else None),
    lambda g: _core.resize_area_boxes(g.array(3, F32), g.array(2, np.int64, fixed={1: 4}),
                                      (g.int(-1, 12), g.int(-1, 12))),
    lambda g: _core.resize_area_boxes_u8(g.array(3, U8), g.array(2, np.int64, fixed={1: 4}),
                                         (g.int(-1, 12), g.int(-1, 12))),
    lambda g: _core.max_pool2d(g.array(4, F32, max_side=7), (g.int(-1, 4), g.int(-1, 4)),
                               (g.int(-1, 3), g.int(-1, 3))),
    lambda g: _core.prelu(g.array(g.rank(1, 5), F32, max_side=5), g.array(1, F32), g.flag()),
    lambda g: _core.relu(g.array(g.rank(0, 5), F32, max_side=5), g.flag()),
    lambda g: _core.fully_connected(g.array(2, F32), g.array(2, F32),
                                    g.array(1, F32) if g.flag() else None),
    lambda g: _core.softmax(g.array(g.rank(0, 5), F32, max_side=5), g.int(-6, 6)),
    lambda g: _core.nms(g.array(2, F32, fixed={1: 4}), g.array(1, F32), g.float(-1, 2),
                        g.choice(("union", "min", ""))),
]


def test_one_input(data: bytes) -> None:
    g = Inputs(atheris.FuzzedDataProvider(data))
    target = TARGETS[g.fdp.ConsumeIntInRange(0, len(TARGETS) - 1)]
    try:
        target(g)
    except EXPECTED:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
