"""Time masksegx beside the detectors people would pick instead, and print the ratios (markdown).

On the bundled 640x480 street photo with three faces (``masksegx.examples.MULTI_FACE_EXAMPLE``),
one thread unless a row says otherwise, every contender of ``benchmarks/peers.side_by_side``
(the same as ``benchmarks/test_bench_side_by_side.py``) is timed in interleaved rounds (one call
of each per round, so a change in the machine's load touches them all alike); the table gives
medians, and every ratio comes from this one run; the threads target is measured both for one
call with ``threads=2`` and for a stream of photos through one segmenter on two threads
(:func:`stream_throughput`). Then, per net of one ``FaceMaskSegmenter``
call, the multiply-adds, and the time and achieved GMAC/s of each backend beside the core's
measured GEMM peak (our GEMM kernel on an L2-sized 1x1 convolution, and numpy's float32 matmul
on one thread).

    python -m tools.speed_ratios                               # ../shared/data/models if present
    python -m tools.speed_ratios --reference-models DIR --rounds 50

The reference detectors' models come from ``--reference-models``, else
``$MASKSEGX_REFERENCE_MODELS``, else ``../shared/data/models`` beside the repository; rows whose
models are missing are listed as skipped.
"""

from __future__ import annotations

import os

# One thread for the BLAS behind numpy's matmul (the GEMM peak row): set before numpy loads.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from masksegx import FaceMaskSegmenter, _core  # noqa: E402
from masksegx._executor import NativeNet  # noqa: E402
from masksegx._models import BACKENDS, open_net  # noqa: E402
from masksegx.eval.report import markdown_table  # noqa: E402
from masksegx.examples import MULTI_FACE_EXAMPLE  # noqa: E402
from masksegx.nn import simd_level  # noqa: E402

from . import REPO  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
import peers  # noqa: E402


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import onnxruntime

    return (f"{model}, {cores} cores available, kernels {simd_level()}; Python "
            f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}, OpenCV "
            f"{cv2.__version__}")


def interleaved(runs: dict[str, Callable[[], object]], rounds: int, warmup: int) -> dict[str, float]:
    """Median seconds of each run over ``rounds`` rounds of one call each."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def gemm_peaks(repeats: int = 50) -> tuple[float, float]:
    """Best GMAC/s of our GEMM (a 256 x 256 1x1 convolution of a 32 x 32 plane) and of numpy's
    float32 matmul of the same size on one thread."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 256, 32, 32)).astype(np.float32)
    weight = rng.standard_normal((256, 256, 1, 1)).astype(np.float32)
    out = np.empty_like(x)
    a, b = weight.reshape(256, 256), x.reshape(256, 1024)
    macs = 256 * 256 * 1024
    best = {"ours": np.inf, "numpy": np.inf}
    for _ in range(repeats):
        start = time.perf_counter()
        _core.conv2d(x, weight, None, (1, 1), (0, 0), 1, None, out)
        best["ours"] = min(best["ours"], time.perf_counter() - start)
        start = time.perf_counter()
        np.matmul(a, b)
        best["numpy"] = min(best["numpy"], time.perf_counter() - start)
    return macs / best["ours"] / 1e9, macs / best["numpy"] / 1e9


def recorded_net_inputs(segmenter: FaceMaskSegmenter, photo: np.ndarray) -> dict[str, tuple]:
    """Per net of one segmenter call: (its file, the backend the call used, the inputs it got)."""
    inputs: dict[str, list[np.ndarray]] = {}

    def recording(name: str, run: Callable) -> Callable:
        def run_and_record(x: np.ndarray) -> object:
            inputs.setdefault(name, []).append(x.copy())
            return run(x)

        return run_and_record

    def name_of(path: str) -> str:
        return os.path.basename(path).removesuffix(".onnx")

    detector = segmenter.detector
    # Both passes of the detector; a net they share is one row.
    passes = (("_nets", detector.model_paths), ("_close_up_nets", detector.close_up_model_paths))
    paths = {name_of(p): p for _, pass_paths in passes for p in pass_paths}
    backends = dict.fromkeys(paths, detector.backend)
    stages = {"attributes": segmenter.attributes, "masknet": segmenter.masknet}
    originals = (
        {attribute: getattr(detector, attribute) for attribute, _ in passes},
        {name: stage._net for name, stage in stages.items()},
    )
    try:
        for attribute, pass_paths in passes:
            setattr(detector, attribute, tuple(
                recording(name_of(path), net)
                for path, net in zip(pass_paths, originals[0][attribute])
            ))
        for name, stage in stages.items():
            stage._net = dataclasses.replace(stage._net, run=recording(name, stage._net.run),
                                             run_all=recording(name, stage._net.run_all))
            paths[name], backends[name] = stage.model_path, stage.backend
        segmenter(photo)
    finally:
        for attribute, nets in originals[0].items():
            setattr(detector, attribute, nets)
        for name, stage in stages.items():
            stage._net = originals[1][name]
    return {name: (paths[name], backends[name], inputs[name]) for name in inputs}


def multiply_add_table(photo: np.ndarray, pipeline_seconds: float, rounds: int, warmup: int) -> str:
    """Per net of one default segmenter call: multiply-adds, and the time and GMAC/s of both
    backends on the inputs the call gave it (interleaved rounds)."""
    nets = recorded_net_inputs(FaceMaskSegmenter(threads=1), photo)
    runs, counts = {}, {}
    for name, (path, _, xs) in nets.items():
        native = NativeNet(path)
        counts[name] = sum(native.multiply_adds({native.input_names[0]: x}) for x in xs)
        for backend in BACKENDS:
            run = open_net(path, backend, 1).run
            runs[name, backend] = lambda run=run, xs=xs: [run(x) for x in xs]
    seconds = interleaved(runs, rounds, warmup)
    ours, numpy_peak = gemm_peaks()

    def cells(macs: int, time_s: float) -> list[str]:
        rate = macs / time_s / 1e9
        return [f"{time_s * 1e3:.2f}", f"{rate:.1f} ({100 * rate / ours:.0f}%)"]

    rows = []
    totals = {backend: 0.0 for backend in BACKENDS}
    used = 0.0
    for name, (_, backend, xs) in nets.items():
        if len({x.shape[1:] for x in xs}) == 1:  # crops or faces: how many, in how many calls
            count = sum(len(x) for x in xs)
            calls = f" ({len(xs)} calls)" if len(xs) > 1 else ""
            shapes = f"{count} x {'x'.join(map(str, xs[0].shape[1:]))}{calls}"
        else:
            shapes = f"{len(xs)} calls (pyramid levels, the small ones tiled)"
        row = [name, shapes, f"{counts[name] / 1e6:.1f}"]
        for each in BACKENDS:
            totals[each] += seconds[name, each]
            row += cells(counts[name], seconds[name, each])
        used += seconds[name, backend]
        rows.append([*row, backend])
    macs = sum(counts.values())
    rows.append(["all nets", "", f"{macs / 1e6:.1f}", *cells(macs, totals["native"]),
                 *cells(macs, totals["onnxruntime"]), f"{used * 1e3:.2f} ms as used"])
    rows.append(["whole image (pipeline call)", "", f"{macs / 1e6:.1f}",
                 *cells(macs, pipeline_seconds), "", "", "default backends"])
    headers = ["net", "inputs", "MMAC", "native ms", "native GMAC/s (of peak)", "onnxruntime ms",
               "onnxruntime GMAC/s (of peak)", "pipeline uses"]
    return (f"{markdown_table(headers, rows)}\n\nGEMM peak of one core: our kernel {ours:.1f} "
            f"GMAC/s (256x256 1x1 convolution of a 32x32 plane, best of 50; the percentages are "
            f"of this); numpy float32 matmul of the same size, one thread: {numpy_peak:.1f} GMAC/s.")


def parallel_scaling(repeats: int = 100) -> float:
    """Speed-up of GIL-free work (our GEMM) on two threads over one, now: the most that
    ``threads=2`` can gain on this machine at this moment (other processes take cores too)."""
    x = np.ones((1, 256, 32, 32), np.float32)
    weight = np.ones((256, 256, 1, 1), np.float32)

    def work(_: object = None) -> None:
        for _ in range(repeats):
            _core.conv2d(x, weight, None, (1, 1), (0, 0), 1, None)

    start = time.perf_counter()
    work()
    work()
    serial = time.perf_counter() - start
    with ThreadPoolExecutor(2) as pool:
        start = time.perf_counter()
        list(pool.map(work, range(2)))
        parallel = time.perf_counter() - start
    return serial / parallel


def stream_throughput(photo: np.ndarray, images: int = 16, rounds: int = 3) -> float:
    """Images per second of a stream of ``images`` photos through one ``FaceMaskSegmenter``
    (each call single-threaded) on two threads, over those of one thread: what ``masksegx
    segment --threads 2`` does (best of ``rounds`` each, interleaved)."""
    segmenter = FaceMaskSegmenter(threads=1)
    batch = [photo] * images
    segmenter(photo)
    best = {1: float("inf"), 2: float("inf")}
    with ThreadPoolExecutor(2) as pool:
        for _ in range(rounds):
            for threads in (1, 2):
                start = time.perf_counter()
                if threads == 1:
                    for image in batch:
                        segmenter(image)
                else:
                    list(pool.map(segmenter, batch))
                best[threads] = min(best[threads], time.perf_counter() - start)
    return best[1] / best[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-models", help="folder of the reference detectors' models")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    photo = cv2.imread(MULTI_FACE_EXAMPLE.path)
    folder = peers.reference_models_dir(args.reference_models)
    contenders = peers.side_by_side(folder)
    skipped = {name: run for name, run in contenders.items() if isinstance(run, str)}
    runs = {name: (lambda run=run: run(photo)) for name, run in contenders.items()
            if not isinstance(run, str)}
    seconds = interleaved(runs, args.rounds, args.warmup)

    detection = seconds[peers.DETECTION]
    rows = []
    for name, value in seconds.items():
        threads = "2" if name in peers.MULTI_THREADED else "1"
        rows.append([name, threads, f"{value * 1e3:.2f}", f"{value / detection:.2f}"])
    for name, reason in skipped.items():
        rows.append([name, "-", "skipped", reason])
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Machine: {machine()}. Date: {date}. Photo: "
          f"{os.path.basename(MULTI_FACE_EXAMPLE.path)} (640x480, 3 faces); medians of "
          f"{args.rounds} interleaved rounds.\n")
    print(markdown_table(["contender", "threads", "median ms", "x masksegx detection"], rows))
    print("\nTargets (ratios from this run):\n")
    for line in targets(seconds, stream_throughput(photo)):
        print(f"- {line}")
    print("\nMultiply-adds of one FaceMaskSegmenter call (one thread), each net timed on both "
          "backends on the inputs the call gave it:\n")
    print(multiply_add_table(photo, seconds[peers.PIPELINE], args.rounds, args.warmup))
    return 0


def targets(seconds: dict[str, float], stream: float) -> list[str]:
    """The issue's four targets, each with its ratio and whether it holds; ``stream`` is
    :func:`stream_throughput`'s ratio."""
    def verdict(ok: bool) -> str:
        return "holds" if ok else "does not hold"

    lines = []
    ours, pipeline = seconds[peers.DETECTION], seconds[peers.PIPELINE]
    if peers.RFB in seconds:
        ratio = seconds[peers.RFB] / ours
        one_pass = seconds[peers.RFB] / seconds[peers.DETECTION_ONE_PASS]
        lines.append(f"detection no slower than RFB-320 in onnxruntime: RFB-320 / masksegx "
                     f"detection = {ratio:.2f} ({verdict(ratio >= 1)}; without the close-up "
                     f"pass {one_pass:.2f})")
    if peers.RETINAFACE in seconds:
        ratio = seconds[peers.RETINAFACE] / pipeline
        lines.append(f"whole pipeline no slower than RetinaFace's detection alone: RetinaFace / "
                     f"pipeline = {ratio:.2f} ({verdict(ratio >= 1)})")
    if peers.STANDARD_MTCNN in seconds:
        ratio = seconds[peers.STANDARD_MTCNN] / ours
        lines.append(f"our MTCNN at least 10x the standard MTCNN weights in onnxruntime: "
                     f"{ratio:.1f}x ({verdict(ratio >= 10)})")
    ratio = pipeline / seconds[peers.PIPELINE_THREADS_2]
    detection = ours / seconds[peers.DETECTION_THREADS_2]
    lines.append(f"threads=2 at least 1.5x the throughput of threads=1: one call with "
                 f"threads=2 {ratio:.2f}x ({verdict(ratio >= 1.5)}; detection alone "
                 f"{detection:.2f}x); a stream of photos through one segmenter on 2 threads, "
                 f"each call single-threaded (`masksegx segment --threads 2`), "
                 f"{stream:.2f}x the images per second of 1 thread; GIL-free GEMM work on two "
                 f"threads gained {parallel_scaling():.2f}x on this machine just now (the ceiling "
                 "here)")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
