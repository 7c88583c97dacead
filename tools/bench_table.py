"""Run the kernel latency suites and print the kernel speed table (markdown, docs/kernel_speed.md).

Each benchmark group holds one C++ kernel and its peers; a test's implementation is the word
``cpp``, ``numpy`` or ``opencv`` in its name. Ratios are peer median / C++ median (> 1: C++ is
faster). Single-threaded: the suites pin OpenCV to one thread.

    python -m tools.bench_table                      # runs pytest-benchmark
    python -m tools.bench_table --from-json run.json # reuse a --benchmark-json file

The benchmarks import masksegx as this process would: the installed package, or the working
tree with ``PYTHONPATH=python``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict

from masksegx.eval.report import markdown_table

from . import REPO

IMPLEMENTATIONS = ("cpp", "numpy", "opencv")


def run_benchmarks(path: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "benchmarks"), "-q",
         "--benchmark-only", f"--benchmark-json={path}", "-k", "not pipeline and not threads"],
        check=True, stdout=sys.stderr,  # stdout carries only the table
    )


def implementation(test_name: str) -> str:
    for word in IMPLEMENTATIONS:
        if re.search(rf"(^|_){word}(_|\[|$)", test_name.replace("test_", "", 1)):
            return word
    raise ValueError(f"cannot tell the implementation of {test_name}")


def table(report: dict) -> str:
    groups: dict = defaultdict(dict)
    for bench in report["benchmarks"]:
        groups[bench["group"]][implementation(bench["name"])] = bench["stats"]["median"] * 1e3
    rows = []
    for name in sorted(groups):
        times = groups[name]
        cpp = times.get("cpp")
        cells = [name, f"{cpp:.3f}" if cpp else "-"]
        for peer in ("numpy", "opencv"):
            t = times.get(peer)
            cells.append(f"{t:.3f} ({t / cpp:.1f}x)" if t and cpp else "-")
        rows.append(cells)
    return markdown_table(["kernel, image", "C++ ms", "numpy ms (x)", "OpenCV ms (x)"], rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--from-json", help="pytest-benchmark JSON to read instead of running")
    args = parser.parse_args(argv)
    path = args.from_json
    if path is None:
        path = os.path.join(tempfile.mkdtemp(), "bench.json")
        run_benchmarks(path)
    with open(path) as fh:
        print(table(json.load(fh)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
