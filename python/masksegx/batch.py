"""Batch work behind ``masksegx segment``: expand inputs, run a segmenter, write the results.

Inputs are image files, folders (their images, sorted, not recursive), glob patterns and video
files (every ``frame_step``-th frame). Each image or frame gives three files in the output folder:

``<name>.json``         boxes, scores, landmarks, attributes and each face's mask as COCO RLE;
``<name>_mask.png``     the union of the faces' masks, 0 / 255;
``<name>_overlay.jpg``  the image with masks tinted, boxes, landmarks and attributes drawn.

``<name>`` is the file stem (``<stem>_f<frame>`` for video frames), made unique with a ``-2``,
``-3``... suffix when two inputs share a stem (in input order, so names do not depend on which
image finishes first). Unreadable inputs are reported and skipped.

Images run in parallel on threads sharing one segmenter (``threads``), or in worker processes
each holding its own segmenter (``workers``): the pipeline's Python steps hold the GIL, so
processes scale further on many cores, at the cost of one set of models per worker.
"""

from __future__ import annotations

import functools
import glob
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

import cv2
import numpy as np

from . import rle
from .io import IMAGE_SUFFIXES, DatasetError, read_image
from .pipeline import Face

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class Source:
    """One thing to read: an image file, or a video file (all its sampled frames)."""

    path: str
    is_video: bool


@dataclass
class BatchReport:
    """What a batch did: images written and (input, message) pairs that failed."""

    written: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


def expand_inputs(inputs: Iterable[str]) -> tuple[list[Source], list[tuple[str, str]]]:
    """Sources for files, folders and glob patterns; also ``(input, message)`` for bad ones."""
    sources: list[Source] = []
    problems: list[tuple[str, str]] = []
    for item in inputs:
        if os.path.isdir(item):
            names = sorted(os.listdir(item))
            found = [
                _source(os.path.join(item, n))
                for n in names
                if n.lower().endswith(IMAGE_SUFFIXES + VIDEO_EXTENSIONS)
            ]
            if not found:
                problems.append((item, "folder holds no images or videos"))
            sources.extend(found)
        elif os.path.isfile(item):
            sources.append(_source(item))
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not matches:
                problems.append((item, "pattern matches no files"))
            sources.extend(_source(p) for p in matches)
        else:
            problems.append((item, "no such file or folder"))
    return sources, problems


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
    """
    if threads > 1 and workers > 1:
        raise ValueError("threads and workers: use one or the other")
    segment = make_segmenter()
    os.makedirs(output, exist_ok=True)
    report = BatchReport()
    names = _UniqueNames()
    bar = _ProgressBar(_count_items(sources, frame_step), progress)
    pending: list[tuple[str, Future[None]]] = []
    pool: Executor
    if workers > 1:
        del segment  # each worker builds its own
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(make_segmenter,),
        )
        task, parallel = functools.partial(_worker_task, output), workers
    else:
        pool = ThreadPoolExecutor(threads)
        task, parallel = functools.partial(_segment_and_write, segment, output), threads

    def finish(entry: tuple[str, Future[None]]) -> None:
        label, future = entry
        try:
            future.result()
            report.written += 1
        except (ValueError, OSError) as err:
            report.failures.append((label, str(err)))
        except BrokenExecutor:
            report.failures.append((label, WORKER_DIED))
        bar.advance()

    with pool:
        for label, name, image, error in _read_items(sources, frame_step):
            if error is not None:
                report.failures.append((label, error))
                bar.advance()
                continue
            try:
                future = pool.submit(task, names.claim(name), label, image)
            except BrokenExecutor:
                report.failures.append((label, WORKER_DIED))
                bar.advance()
                continue
            pending.append((label, future))
            # Bounded look-ahead keeps memory flat on long videos and big folders.
            while len(pending) > 2 * parallel:
                finish(pending.pop(0))
        for entry in pending:
            finish(entry)
    bar.close()
    return report


def _segment_and_write(segment: Segmenter, output: str, name: str, label: str, image: np.ndarray) -> None:
    write_results(output, name, label, image, segment(image))


_worker_segment: Segmenter | None = None


def _start_worker(make_segmenter: Callable[[], Segmenter]) -> None:
    global _worker_segment
    cv2.setNumThreads(1)  # the parallelism is the processes; OpenCV threads would oversubscribe
    _worker_segment = make_segmenter()


def _worker_task(output: str, name: str, label: str, image: np.ndarray) -> None:
    assert _worker_segment is not None, "_start_worker runs first in every worker"
    _segment_and_write(_worker_segment, output, name, label, image)


def write_results(output: str, name: str, label: str, image: np.ndarray, faces: list[Face]) -> None:
    """Write ``<name>.json``, ``<name>_mask.png`` and ``<name>_overlay.jpg`` into ``output``."""
    union = np.zeros(image.shape[:2], bool)
    for face in faces:
        union |= face.mask
    record = {
        "input": label,
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "faces": [face_record(face) for face in faces],
    }
    with open(os.path.join(output, f"{name}.json"), "w", encoding="utf-8") as out:
        json.dump(record, out, indent=1)
        out.write("\n")
    pictures = (("_mask.png", union.astype(np.uint8) * 255), ("_overlay.jpg", overlay(image, faces)))
    for suffix, picture in pictures:
        path = os.path.join(output, name + suffix)
        if not cv2.imwrite(path, picture):
            raise OSError(f"could not write {path!r}")


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


def _read_items(
    sources: list[Source], frame_step: int
) -> Iterator[tuple[str, str, np.ndarray | None, str | None]]:
    """(label, name, image, error) for every image and sampled frame, read lazily."""
    for source in sources:
        stem = os.path.splitext(os.path.basename(source.path))[0]
        if not source.is_video:
            try:
                yield source.path, stem, read_image(source.path), None
            except (DatasetError, OSError) as err:
                yield source.path, stem, None, str(err)
            continue
        capture = cv2.VideoCapture(source.path)
        if not capture.isOpened():
            yield source.path, stem, None, "cannot open the video (unreadable or unknown format)"
            continue
        index = 0
        read_any = False
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            read_any = True
            if index % frame_step == 0:
                yield f"{source.path}#{index}", f"{stem}_f{index:06d}", frame, None
            index += 1
        capture.release()
        if not read_any:
            yield source.path, stem, None, "the video has no readable frames"


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
