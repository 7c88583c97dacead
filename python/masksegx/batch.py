"""Batch work behind ``masksegx segment``: expand inputs, run a segmenter, write the results.

Inputs are image files, folders (their images, sorted, not recursive), glob patterns and video
files (every ``frame_step``-th frame). Each image or frame gives three files in the output folder:

``<name>.json``         boxes, scores, landmarks, attributes and each face's mask as COCO RLE;
``<name>_mask.png``     the union of the faces' masks, 0 / 255;
``<name>_overlay.jpg``  the image with masks tinted, boxes, landmarks and attributes drawn.

``<name>`` is the file stem (``<stem>_f<frame>`` for video frames), made unique with a ``-2``,
``-3``... suffix when two inputs share a stem (in input order, so names do not depend on which
image finishes first).

Nothing is lost, nothing overwritten, no batch is ended by one file:

- every failure of one input (unreadable, over ``max_pixels``, out of memory, a write error) is
  reported and the batch goes on; a truncated video is reported, its frames read are kept;
- a damaged but decodable JPEG is segmented and reported as a warning (``BatchReport.warnings``);
- the three files of an image are written to temporary files in the output folder and renamed
  into place, the JSON last: a JSON exists only beside its complete mask and overlay;
- a file already there is never replaced unless ``overwrite``: that input is reported instead;
- folders and patterns skip earlier outputs: ``X_mask.png``, ``X_overlay.jpg`` and ``X.json``
  where ``X.json`` and ``X_mask.png`` both exist (a file named on its own is always read).

Images run in parallel on threads sharing one segmenter (``threads``), or in worker processes
each holding its own segmenter (``workers``): the pipeline's Python steps hold the GIL, so
processes scale further on many cores, at the cost of one set of models per worker.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import multiprocessing
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

import cv2
import numpy as np

from . import rle
from .io import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, read_image
from .pipeline import Face

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
#: What each image or frame writes, after ``<name>``; the JSON last (see write_results).
OUTPUT_SUFFIXES = ("_mask.png", "_overlay.jpg", ".json")


@dataclass(frozen=True)
class Source:
    """One thing to read: an image file, or a video file (all its sampled frames)."""

    path: str
    is_video: bool


@dataclass
class BatchReport:
    """What a batch did: images written, (input, message) pairs that failed, and (input,
    message) warnings about inputs that were segmented (damaged JPEGs)."""

    written: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def expand_inputs(inputs: Iterable[str]) -> tuple[list[Source], list[tuple[str, str]]]:
    """Sources for files, folders and glob patterns; also ``(input, message)`` for bad ones.

    Folders and patterns leave out earlier outputs of ``segment`` (``X_mask.png``,
    ``X_overlay.jpg`` and ``X.json`` where ``X.json`` and ``X_mask.png`` both exist); a file
    named on its own is always taken.
    """
    sources: list[Source] = []
    problems: list[tuple[str, str]] = []
    for item in inputs:
        if os.path.isdir(item):
            names = sorted(os.listdir(item))
            found = [
                _source(os.path.join(item, n))
                for n in names
                if n.lower().endswith(IMAGE_SUFFIXES + VIDEO_EXTENSIONS)
                and not _is_earlier_output(os.path.join(item, n))
            ]
            if not found:
                problems.append((item, "folder holds no images or videos"))
            sources.extend(found)
        elif os.path.isfile(item):
            sources.append(_source(item))
        elif glob.has_magic(item):
            matches = sorted(
                p for p in glob.glob(item) if os.path.isfile(p) and not _is_earlier_output(p)
            )
            if not matches:
                problems.append((item, "pattern matches no files"))
            sources.extend(_source(p) for p in matches)
        else:
            problems.append((item, "no such file or folder"))
    return sources, problems


def _is_earlier_output(path: str) -> bool:
    """One of the files of an ``X`` written by segment: ``X.json`` and ``X_mask.png`` exist."""
    for suffix in OUTPUT_SUFFIXES:
        if path.endswith(suffix):
            name = path[: -len(suffix)]
            return os.path.isfile(name + ".json") and os.path.isfile(name + "_mask.png")
    return False


Segmenter = Callable[[np.ndarray], list[Face]]
WORKER_DIED = "a worker process stopped unexpectedly (killed or out of memory?); not segmented"


def run_batch(
    sources: list[Source],
    make_segmenter: Callable[[], Segmenter],
    output: str,
    *,
    threads: int = 1,
    workers: int = 1,
    frame_step: int = 1,
    progress: TextIO | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    overwrite: bool = False,
) -> BatchReport:
    """Segment every image and sampled video frame of ``sources``, writing into ``output``.

    ``make_segmenter`` builds the segmenter (a callable image -> faces), for example
    ``functools.partial(FaceMaskSegmenter, method="spectral")``. It is called once here first,
    so that bad settings or model files fail before any image is read.

    ``threads`` images are processed at once on that one segmenter (it must be thread-safe, as
    :class:`~masksegx.pipeline.FaceMaskSegmenter` is). ``workers`` > 1 instead starts that many
    worker processes (spawned, each single-threaded), each calling ``make_segmenter`` once (it
    must pickle); this process reads the images and hands them out. Outputs do not depend on
    either setting. If a worker dies (killed, out of memory), its image and every later one are
    reported as failures. ``progress`` gets a progress bar.

    Images and video frames over ``max_pixels`` are refused (see :func:`masksegx.io.read_image`);
    files already in ``output`` are replaced only if ``overwrite``. On KeyboardInterrupt the
    images not started are dropped, those started are finished (workers ignore Ctrl-C: the
    caller reports it once) and the exception goes on.
    """
    if threads > 1 and workers > 1:
        raise ValueError("threads and workers: use one or the other")
    segment = make_segmenter()
    os.makedirs(output, exist_ok=True)
    if not os.access(output, os.W_OK):
        raise OSError(f"output folder {output!r} is not writable")
    pool: Executor
    if workers > 1:
        del segment  # each worker builds its own
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(make_segmenter,),
        )
        task: Callable[..., None] = functools.partial(_worker_task, output, overwrite)
    else:
        pool = ThreadPoolExecutor(threads)
        task = functools.partial(_segment_and_write, segment, output, overwrite)
    run = _Run(pool, task, output, overwrite, _ProgressBar(_count_items(sources, frame_step), progress))
    with pool:
        try:
            for item in _read_items(sources, frame_step, max_pixels):
                run.start(item)
                # Bounded look-ahead keeps memory flat on long videos and big folders.
                while len(run.pending) > 2 * max(threads, workers):
                    run.finish(run.pending.pop(0))
            for entry in run.pending:
                run.finish(entry)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    run.bar.close()
    return run.report


class _Run:
    """The state of one run_batch: its pool, the futures pending, the report."""

    def __init__(self, pool: Executor, task: Callable[..., None], output: str, overwrite: bool,
                 bar: _ProgressBar) -> None:
        self.pool, self.task, self.output, self.overwrite, self.bar = pool, task, output, overwrite, bar
        self.report = BatchReport()
        self.names = _UniqueNames()
        self.pending: list[tuple[str, Future[None]]] = []

    def start(self, item: _Item) -> None:
        """Hand ``item`` to the pool, or report why not."""
        if item.warning is not None:
            self.report.warnings.append((item.label, item.warning))
        try:
            if item.error is not None:
                self.report.failures.append((item.label, item.error))
            elif item.image is not None:
                name = self.names.claim(item.name)
                if not self.overwrite:
                    refuse_existing(output_paths(self.output, name))
                with _sigint_blocked():  # a worker spawned here inherits the blocked mask
                    future = self.pool.submit(self.task, name, item.label, item.image)
                self.pending.append((item.label, future))
                return
        except BrokenExecutor:
            self.report.failures.append((item.label, WORKER_DIED))
        except FileExistsError as err:
            self.report.failures.append((item.label, str(err)))
        self.bar.advance()

    def finish(self, entry: tuple[str, Future[None]]) -> None:
        """Wait for one pending image and report how it went."""
        label, future = entry
        try:
            future.result()
            self.report.written += 1
        except BrokenExecutor:
            self.report.failures.append((label, WORKER_DIED))
        except Exception as err:  # noqa: BLE001 - one input's failure, whatever it is, is reported
            self.report.failures.append((label, failure_message(err)))
        self.bar.advance()


def failure_message(err: BaseException) -> str:
    """What to report for one input that failed with ``err``."""
    if isinstance(err, MemoryError):
        return f"out of memory ({err})" if str(err) else "out of memory"
    if isinstance(err, (ValueError, OSError)):  # DatasetError and write errors say it all
        return str(err)
    return f"{type(err).__name__}: {err}"


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Hold SIGINT pending in this thread. A worker process spawned meanwhile inherits the
    blocked signal, so Ctrl-C (sent to the whole process group) reaches only this process,
    which reports it once, instead of a traceback from every worker."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: the workers' initializer ignores it
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _segment_and_write(
    segment: Segmenter, output: str, overwrite: bool, name: str, label: str, image: np.ndarray
) -> None:
    write_results(output, name, label, image, segment(image), overwrite=overwrite)


_worker_segment: Segmenter | None = None


def _start_worker(make_segmenter: Callable[[], Segmenter]) -> None:
    global _worker_segment
    # Ctrl-C is the parent's to report (where SIGINT is not blocked already, see _sigint_blocked).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)  # the parallelism is the processes; OpenCV threads would oversubscribe
    _worker_segment = make_segmenter()


def _worker_task(output: str, overwrite: bool, name: str, label: str, image: np.ndarray) -> None:
    assert _worker_segment is not None, "_start_worker runs first in every worker"
    _segment_and_write(_worker_segment, output, overwrite, name, label, image)


def output_paths(output: str, name: str) -> list[str]:
    """The files an image named ``name`` writes into ``output``, in writing order (JSON last)."""
    return [os.path.join(output, name + suffix) for suffix in OUTPUT_SUFFIXES]


def write_results(
    output: str, name: str, label: str, image: np.ndarray, faces: list[Face], *, overwrite: bool = False
) -> None:
    """Write ``<name>_mask.png``, ``<name>_overlay.jpg`` and ``<name>.json`` into ``output``,
    all or none (:func:`write_atomically`): the JSON exists only beside the other two."""
    union = np.zeros(image.shape[:2], bool)
    for face in faces:
        union |= face.mask
    record = {
        "input": label,
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "faces": [face_record(face) for face in faces],
    }
    contents = [
        encode_image(".png", union.astype(np.uint8) * 255),
        encode_image(".jpg", overlay(image, faces)),
        (json.dumps(record, indent=1) + "\n").encode("utf-8"),
    ]
    write_atomically(list(zip(output_paths(output, name), contents)), overwrite=overwrite)


def encode_image(extension: str, picture: np.ndarray) -> bytes:
    """``picture`` as the bytes of an image file of type ``extension`` (".png", ".jpg")."""
    ok, data = cv2.imencode(extension, picture)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {extension} image of shape {picture.shape}")
    return data.tobytes()


def write_atomically(files: Sequence[tuple[str, bytes]], *, overwrite: bool = False) -> None:
    """Write each ``(path, content)``: all to temporary files beside their paths first, then
    renamed into place in the order given, so a reader never sees a partial file and the last
    path exists only when every other does. On any failure the temporary files are removed
    and nothing is placed. Without ``overwrite`` an existing path raises FileExistsError
    before anything is written."""
    if not overwrite:
        refuse_existing(path for path, _ in files)
    temporaries: list[str] = []
    try:
        for path, content in files:
            folder, base = os.path.split(path)
            # Hidden, unique and not an image suffix: never read back as an input.
            temporary = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:12]}.part")
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
                descriptor = os.open(temporary, flags)
                temporaries.append(temporary)
                with os.fdopen(descriptor, "wb") as out:
                    out.write(content)
            except OSError as err:
                raise OSError(err.errno, f"cannot write {path!r}: {err.strerror or err}") from err
        for (path, _), temporary in zip(files, temporaries):
            os.replace(temporary, path)
    finally:
        for temporary in temporaries:
            if os.path.lexists(temporary):
                os.unlink(temporary)


def refuse_existing(paths: Iterable[str]) -> None:
    """FileExistsError naming the first of ``paths`` that exists."""
    for path in paths:
        if os.path.lexists(path):
            raise FileExistsError(f"{path!r} exists and was not written by this run "
                                  "(--overwrite / overwrite=True replaces it)")


def face_record(face: Face) -> dict[str, Any]:
    """A JSON-ready dict of one face; the mask as COCO RLE (see :mod:`masksegx.rle`)."""
    return {
        "box": [round(float(v), 2) for v in face.box],
        "score": round(face.score, 5),
        "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
        "gender": face.gender,
        "gender_prob": round(face.gender_prob, 5),
        "coverage": round(face.coverage, 4),
        "coverage_probs": [round(float(p), 5) for p in face.coverage_probs],
        "wearing": face.wearing,
        "wearing_probs": (None if face.wearing_probs is None
                          else [round(float(p), 5) for p in face.wearing_probs]),
        "mask_pixels": int(face.mask.sum()),
        "mask": rle.encode(face.mask),
    }


def overlay(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """The image with each face's mask tinted green, its box, landmarks and a label drawn."""
    out = image.copy()
    scale = max(1, round(max(image.shape[:2]) / 600))
    for face in faces:
        tint = face.mask
        out[tint] = (0.5 * out[tint] + np.array([0, 110, 0])).astype(np.uint8)
        contours, _ = cv2.findContours(tint.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (0, 255, 0), scale)
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 160, 0), scale)
        for x, y in face.landmarks:
            cv2.circle(out, (int(round(x)), int(round(y))), 2 * scale, (0, 0, 255), -1)
        label = f"{face.gender[0].upper()} {face.gender_prob:.2f} | {face.wearing} {face.coverage:.1f}"
        cv2.putText(out, label, (x0, max(12 * scale, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * scale, (255, 255, 255), scale, cv2.LINE_AA)
    return out


def _source(path: str) -> Source:
    return Source(path, path.lower().endswith(VIDEO_EXTENSIONS))


def _count_items(sources: list[Source], frame_step: int) -> int:
    total = 0
    for source in sources:
        if source.is_video:
            capture = cv2.VideoCapture(source.path)
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
            capture.release()
            total += max(1, -(-frames // frame_step))
        else:
            total += 1
    return total


@dataclass
class _Item:
    """An image or frame read (``image``) or an input that failed (``error``, then no image);
    ``warning`` about it."""

    label: str
    name: str
    image: np.ndarray | None
    error: str | None = None
    warning: str | None = None


def _read_items(sources: list[Source], frame_step: int, max_pixels: int | None) -> Iterator[_Item]:
    """Every image and sampled frame, read lazily; failures as items with an error."""
    for source in sources:
        stem = os.path.splitext(os.path.basename(source.path))[0]
        if not source.is_video:
            damage: list[str] = []
            try:
                image = read_image(source.path, max_pixels=max_pixels, on_warning=damage.append)
            except Exception as err:  # noqa: BLE001 - MemoryError included: report, go on
                yield _Item(source.path, stem, None, failure_message(err))
                continue
            yield _Item(source.path, stem, image, warning="; ".join(damage) or None)
            continue
        yield from _read_video(source.path, stem, frame_step, max_pixels)


def _read_video(path: str, stem: str, frame_step: int, max_pixels: int | None) -> Iterator[_Item]:
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            yield _Item(path, stem, None, "cannot open the video (unreadable or unknown format)")
            return
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if max_pixels is not None and width * height > max_pixels:
            yield _Item(path, stem, None, f"frames are {width}x{height} ({width * height} pixels), "
                        f"over the limit of {max_pixels} pixels (--max-pixels)")
            return
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        index = 0
        while True:
            try:
                ok, frame = capture.read()
            except Exception as err:  # noqa: BLE001 - cv2.error or MemoryError from one frame
                yield _Item(f"{path}#{index}", stem, None, failure_message(err))
                return
            if not ok:
                break
            if index % frame_step == 0:
                yield _Item(f"{path}#{index}", f"{stem}_f{index:06d}", frame)
            index += 1
    finally:
        capture.release()
    if index == 0:
        yield _Item(path, stem, None, "the video has no readable frames")
    elif index < declared:
        yield _Item(path, stem, None, f"the video ended after {index} of the {declared} frames its "
                    "container declares (truncated or corrupt); the frames read were segmented")


class _UniqueNames:
    def __init__(self) -> None:
        self._used: set[str] = set()

    def claim(self, name: str) -> str:
        unique, n = name, 1
        while unique in self._used:
            n += 1
            unique = f"{name}-{n}"
        self._used.add(unique)
        return unique


class _ProgressBar:
    """A one-line text bar on ``stream`` (redrawn at most 10 times a second); silent if None."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.start = self.last = time.perf_counter()

    def advance(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.stream is not None and (now - self.last >= 0.1 or self.done >= self.total):
            self.last = now
            width = 30
            filled = width * min(self.done, self.total) // max(self.total, 1)
            rate = self.done / max(now - self.start, 1e-9)
            self.stream.write(
                f"\rsegment [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total} {rate:.1f} img/s"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.done:
            self.stream.write("\n")
            self.stream.flush()


def progress_stream(force: bool | None) -> TextIO | None:
    """stderr when ``force`` is True, or when None and stderr is a terminal; else None."""
    if force is None:
        force = sys.stderr.isatty()
    return sys.stderr if force else None
