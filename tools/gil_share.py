"""How much of a FaceMaskSegmenter call runs without the GIL, and what 2 threads can gain.

    python -m tools.gil_share [--method fused] [--rounds 40]

Profiles calls on the bundled photos (cProfile, one thread) and adds up the time spent inside
the calls that release the GIL: masksegx's C++ kernels (every binding in cpp/bindings wraps its
kernel in ``py::gil_scoped_release``), onnxruntime's ``run`` (it does the same) and OpenCV
functions. With that share ``p``, Amdahl's law bounds the speed-up of 2 threads on one shared
instance by ``1 / (1 - p / 2)``. The profiler slows the Python parts more than the native ones,
so ``p`` is an underestimate; unlike a timed speed-up, it does not depend on how busy the
machine is.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import cv2

from masksegx import FaceMaskSegmenter
from masksegx.examples import EXAMPLES


def gil_free_group(name: str, cv2_names: set) -> str | None:
    """Which GIL-releasing library a cProfile function name belongs to, if any."""
    if "masksegx._core" in name:
        return "masksegx C++"
    if "onnxruntime" in name and name.endswith(".run>"):
        return "onnxruntime"
    if name.strip("<>") in cv2_names:
        return "OpenCV"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="fused", choices=("fused", "learned", "spectral"))
    parser.add_argument("--rounds", type=int, default=40, help="calls per photo (default 40)")
    args = parser.parse_args()
    segmenter = FaceMaskSegmenter(method=args.method)
    images = [cv2.imread(example.path) for example in EXAMPLES]
    for image in images:
        segmenter(image)  # load and warm up outside the profile
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.rounds):
        for image in images:
            segmenter(image)
    profile.disable()
    stats = pstats.Stats(profile)
    cv2_names = set(dir(cv2))
    shares: dict = {}
    for (_, _, name), (_, _, own_time, _, _) in stats.stats.items():
        group = gil_free_group(name, cv2_names)
        if group:
            shares[group] = shares.get(group, 0.0) + own_time / stats.total_tt
    free = sum(shares.values())
    parts = ", ".join(f"{group} {share:.1%}" for group, share in sorted(shares.items()))
    print(f"GIL released for {free:.1%} of the time ({parts}); "
          f"Amdahl bound for 2 threads: {1 / (1 - free / 2):.2f}x")


if __name__ == "__main__":
    main()
