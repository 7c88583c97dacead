"""Memory soak: call one FaceMaskSegmenter many times and check that resident memory stays flat.

    python .ci/soak.py                       # 10,000 calls, the figures in docs/pipeline.md
    python .ci/soak.py --calls 500 --warmup 100 --every 50    # the CI version (.ci/ci-soak)

Cycles through the bundled photos and their mirror images, encodes every face's mask as COCO
RLE (what ``masksegx segment`` writes), and reads the resident set size (``VmRSS`` in
``/proc/self/status``; Linux) every ``--every`` calls. Growth is measured from the end of the
warm-up (buffers, onnxruntime arenas and allocator pools fill during the first calls) to the
highest reading after it; the exit code is 1 when it exceeds ``--max-growth-mib``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import numpy as np

from masksegx import FaceMaskSegmenter, rle
from masksegx.examples import EXAMPLES


def resident_mib() -> float:
    """This process's resident set size in MiB, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise OSError("no VmRSS line in /proc/self/status")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000, help="segmenter calls (default 10000)")
    parser.add_argument("--every", type=int, default=250, help="read RSS every N calls (default 250)")
    parser.add_argument("--warmup", type=int, default=1000,
                        help="calls before the baseline reading (default 1000)")
    parser.add_argument("--max-growth-mib", type=float, default=16.0,
                        help="fail above this growth after the warm-up (default 16 MiB)")
    parser.add_argument("--method", default="fused", choices=("fused", "learned", "spectral"))
    parser.add_argument("--json", metavar="OUT.json", help="also write the readings here")
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.calls or args.every < 1:
        parser.error("need 0 < --warmup < --calls and --every >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    segmenter = FaceMaskSegmenter(method=args.method)
    images = []
    for example in EXAMPLES:
        image = cv2.imread(example.path)
        images += [image, np.ascontiguousarray(image[:, ::-1])]
    readings = [(0, resident_mib())]
    faces_seen = 0
    start = time.perf_counter()
    for call in range(1, args.calls + 1):
        for face in segmenter(images[call % len(images)]):
            rle.encode(face.mask)
            faces_seen += 1
        if call % args.every == 0 or call in (args.warmup, args.calls):
            readings.append((call, resident_mib()))
            print(f"{call:7d} calls  {readings[-1][1]:8.1f} MiB", flush=True)
    seconds = time.perf_counter() - start
    baseline = next(rss for call, rss in readings if call == args.warmup)
    after = [rss for call, rss in readings if call >= args.warmup]
    summary = {
        "calls": args.calls,
        "method": args.method,
        "faces": faces_seen,
        "seconds": round(seconds, 1),
        "rss_start_mib": round(readings[0][1], 1),
        "rss_after_warmup_mib": round(baseline, 1),
        "rss_max_after_warmup_mib": round(max(after), 1),
        "rss_end_mib": round(readings[-1][1], 1),
        "growth_mib": round(max(after) - baseline, 1),
        "max_growth_mib": args.max_growth_mib,
        "readings": readings,
    }
    print(
        f"{args.calls} calls in {seconds:.0f} s: RSS {summary['rss_start_mib']} MiB at start, "
        f"{summary['rss_after_warmup_mib']} after {args.warmup} warm-up calls, "
        f"{summary['rss_end_mib']} at the end; growth after warm-up {summary['growth_mib']} MiB "
        f"(bound {args.max_growth_mib})"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=1)
    if summary["growth_mib"] > args.max_growth_mib:
        print("soak: FAILED, resident memory grew past the bound", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
