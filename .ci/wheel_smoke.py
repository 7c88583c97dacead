#!/usr/bin/env python3
"""Smoke test of an installed masksegx wheel (cibuildwheel's test-command, .ci/arm64-check).

Runs the whole pipeline on a bundled example photo and checks that the kernels use the SIMD
path this CPU offers: NEON on aarch64 (part of its baseline), AVX2 or AVX-512 on x86-64 CPUs
with AVX2+FMA. Run it from outside the source tree so the installed package is imported.
"""

import platform
import sys

import cv2
import numpy as np

import masksegx
from masksegx import nn
from masksegx.examples import EXAMPLES


def expected_simd_levels() -> set:
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return {"neon"}
    if machine in ("x86_64", "amd64"):
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split() for line in cpuinfo if line.startswith("flags")), [])
        return {"avx2", "avx512"} if {"avx2", "fma"} <= set(flags) else {"scalar"}
    return {"scalar"}


def main() -> int:
    level = nn.simd_level()
    expected = expected_simd_levels()
    assert level in expected, f"simd_level() is {level!r}, expected one of {sorted(expected)}"

    example = EXAMPLES[0]
    image = cv2.imread(example.path)
    assert image is not None, f"cannot read the bundled example {example.path}"
    faces = masksegx.FaceMaskSegmenter()(image)
    assert faces, "no face found in the bundled example"
    x0, y0, x1, y1 = example.face_box
    best = max(faces, key=lambda f: f.mask[y0:y1, x0:x1].sum())
    mask_pixels = int(best.mask[y0:y1, x0:x1].sum())
    assert mask_pixels > 0.05 * (x1 - x0) * (y1 - y0), f"mask too small: {mask_pixels} px"
    assert np.isfinite(best.coverage_probs).all()
    print(
        f"masksegx {masksegx.__version__} on {platform.machine()} (Python "
        f"{platform.python_version()}): simd={level}, {len(faces)} face(s), "
        f"mask {mask_pixels} px, wearing={best.wearing}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
