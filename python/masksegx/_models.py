"""The shipped models and the one way to open them: paths, :class:`ModelNotFoundError`, and a
cache of loaded models keyed by file version.

Models are loaded once per (file, modification time, size, variant) and shared by every object
that asks for the same file and settings, like insightface's ``model_zoo.get_model``: a rewritten
file (training, a download) is loaded afresh, an unchanged one never twice. onnxruntime sessions
are safe to run from several threads at once, so sharing them is too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, Union, cast

import numpy as np

from ._onnx_graph import Shape

if TYPE_CHECKING:
    import onnxruntime

    from ._executor import NativeNet

PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")
R = TypeVar("R")

#: Where the package's own models are shipped.
MODEL_DIR = Path(__file__).resolve().parent / "models"
#: The MTCNN cascade's depthwise-separable nets: P-, R-, O-net and the landmark net.
DETECTOR_MODELS = tuple(MODEL_DIR / f"ds_mtcnn_{net}.onnx" for net in ("pnet", "rnet", "onet", "lnet"))
#: The P-, R- and O-net of the detector's close-up pass with the shipped nets: the first pass's
#: P-net, an R-net trained with zoomed-in faces and the teacher's labels, and an O-net trained
#: without the crowd photos that keeps loose crops of large faces (model card ``ds_mtcnn.md``).
CLOSE_UP_MODELS = (
    DETECTOR_MODELS[0],
    MODEL_DIR / "ds_mtcnn_rnet_closeup.onnx",
    MODEL_DIR / "ds_mtcnn_onet_closeup.onnx",
)
#: The learned face-mask segmentation net (:class:`masksegx.learned.MaskNet`).
MASKNET_MODEL = MODEL_DIR / "masknet.onnx"
#: The multi-attribute net (:class:`masksegx.attributes.AttributePredictor`).
ATTRIBUTES_MODEL = MODEL_DIR / "attributes.onnx"


#: Where a net runs: the masksegx C++ kernels (:class:`masksegx._executor.NativeNet`) or an
#: onnxruntime session (the reference).
BACKENDS = ("native", "onnxruntime")


class ModelNotFoundError(FileNotFoundError, ValueError):
    """A model file is missing (both a FileNotFoundError and a ValueError)."""


def model_file(model: object, name: str = "model", *, shipped: Path | None = None) -> str:
    """The real path of an existing model file: ``model`` (a path), or ``shipped`` when ``model``
    is None.

    TypeError when ``model`` is not a path; :class:`ModelNotFoundError` when the file is missing.
    """
    path = shipped if model is None else model
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name}: expected None or a path to an .onnx file, got {type(model).__name__}")
    resolved = os.path.realpath(os.fsdecode(path))
    if not os.path.isfile(resolved):
        hint = f" (the shipped model is missing; pass {name}=PATH)" if model is None else ""
        raise ModelNotFoundError(f"{name}: no such model file: {resolved}{hint}")
    return resolved


_CACHE: dict[tuple[str, int, int, Hashable], object] = {}
# Re-entrant: a cached object may load the sessions it needs while it is being built.
_CACHE_LOCK = threading.RLock()


def cached(path: str, variant: Hashable, build: Callable[[str], T]) -> T:
    """``build(path)``, built once per file version (modification time and size) and ``variant``
    (whatever else the result depends on: a backend, a thread count)."""
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size, variant)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = build(path)
        return cast(T, _CACHE[key])


def onnx_session(path: str, threads: int, name: str = "model") -> onnxruntime.InferenceSession:
    """The onnxruntime CPU session of the model file ``path`` (shared, see the module docstring).

    ``threads``: intra-op threads, validated by the caller (:func:`masksegx._validation.check_threads`);
    0 leaves both thread pools at onnxruntime's defaults, otherwise the graph runs sequentially
    (one inter-op thread); with more than one thread the idle ones do not spin. onnxruntime's
    warnings are not shown (older exports list every initializer as a graph input, and it warns
    about each one). ValueError, naming the argument ``name``, when onnxruntime cannot load the
    file.
    """
    return cached(path, ("onnxruntime", threads), lambda p: _open_session(p, threads, name))


def _open_session(path: str, threads: int, name: str) -> onnxruntime.InferenceSession:
    import onnxruntime  # imported on use: slow to import, and the native detector runs without it

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1 if threads else 0
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    if threads != 1:
        # Idle intra-op threads sleep instead of spinning: between two runs the cores belong to
        # the caller's other work, not to busy-waiting.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise ValueError(f"{name}: onnxruntime cannot load {path}: {error}") from None


@dataclass(frozen=True)
class OpenedNet:
    """A one-input net file opened in a backend (:func:`open_net`).

    ``run(x)`` returns the first output for the input array ``x``, ``run_all(x)`` every output
    in ``output_names`` order; the names and declared shapes (per axis an int, a symbolic name
    or None) and the file's metadata come from the file.
    """

    backend: str
    run: Callable[[np.ndarray], np.ndarray]
    run_all: Callable[[np.ndarray], tuple[np.ndarray, ...]]
    input_names: tuple[str, ...]
    input_shapes: tuple[Shape | None, ...]
    output_names: tuple[str, ...]
    output_shapes: tuple[Shape | None, ...]
    metadata: dict[str, str]


def check_backend(backend: object, name: str = "backend") -> str:
    """``backend`` if it is one of :data:`BACKENDS` (TypeError/ValueError naming ``name``)."""
    if not isinstance(backend, str):
        raise TypeError(f"{name}: expected one of {BACKENDS}, got {type(backend).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"{name}: expected one of {BACKENDS}, got {backend!r}")
    return backend


def open_net(path: str, backend: str, threads: int, name: str = "model") -> OpenedNet:
    """The net file ``path`` (validated by :func:`model_file`) in ``backend`` (checked by
    :func:`check_backend`) using up to ``threads`` threads per call: onnxruntime's intra-op
    threads, or the native executor's batch split (:func:`masksegx._executor.parallel_threads`;
    the results do not depend on it). Loaded once per file version (see :func:`cached`).
    ValueError, naming ``name``, when the file cannot be loaded or has more than one input."""
    if backend == "native":
        return cached(path, ("OpenedNet native", threads), lambda p: _open_native(p, threads, name))
    return cached(path, ("OpenedNet onnxruntime", threads), lambda p: _open_onnxruntime(p, threads, name))


def _load_native(path: str, name: str) -> NativeNet:
    from ._executor import NativeNet

    try:
        net = NativeNet(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{name}: the native executor cannot load {path}: {error}") from None
    if len(net.input_names) != 1:
        raise ValueError(f"{name}: {path} has {len(net.input_names)} inputs, expected one")
    return net


def _open_native(path: str, threads: int, name: str) -> OpenedNet:
    from ._executor import parallel_threads

    net = cached(path, "NativeNet", lambda p: _load_native(p, name))
    first = net.output_names[0]

    def run(x: np.ndarray) -> np.ndarray:
        with parallel_threads(threads):
            return net(x)[first]

    def run_all(x: np.ndarray) -> tuple[np.ndarray, ...]:
        with parallel_threads(threads):
            out = net(x)
        return tuple(out[name] for name in net.output_names)

    return OpenedNet(
        "native", run, run_all, net.input_names, net.input_shapes, net.output_names, net.output_shapes,
        net.metadata,
    )


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()
_IN_POOL = threading.local()


def _pool(threads: int) -> ThreadPoolExecutor:
    """The process-wide pool of ``threads - 1`` workers."""
    with _POOL_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            pool = _POOLS[threads] = ThreadPoolExecutor(threads - 1, "masksegx")
    return pool


def _marked_in_pool(work: Callable[[T], R]) -> Callable[[T], R]:
    """``work`` marking its thread as a pool worker while it runs (nested calls run serially)."""

    def in_pool(item: T) -> R:
        _IN_POOL.active = True
        try:
            return work(item)
        finally:
            _IN_POOL.active = False

    return in_pool


def run_in_parallel(threads: int, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[work(item) for item in items]`` on up to ``threads`` threads: the caller's and the
    workers of a pool shared process-wide (``threads - 1`` of them per thread count; ``work``
    should release the GIL for this to pay). Each thread takes the next item not yet taken, in
    order (so give the costliest first), and the caller never waits for a pool worker that has
    not started: a busy pool leaves the items to the caller. A call from inside a pool worker
    runs serially (no nested waiting on a saturated pool)."""
    if threads < 2 or len(items) < 2 or getattr(_IN_POOL, "active", False):
        return [work(item) for item in items]
    results: list[R | None] = [None] * len(items)
    taken = iter(range(len(items)))
    lock = threading.Lock()

    def drain(_: object = None) -> None:
        while True:
            with lock:
                k = next(taken, None)
            if k is None:
                return
            results[k] = work(items[k])

    pool, helper = _pool(threads), _marked_in_pool(drain)
    helpers = [pool.submit(helper, None) for _ in range(min(threads, len(items)) - 1)]
    drain()
    for future in helpers:
        if not future.cancel():  # started: it finishes its last item (or raises)
            future.result()
    return cast(list[R], results)


def submit_to_pool(threads: int, work: Callable[[], R]) -> Future[R]:
    """``work()`` started on a worker of :func:`run_in_parallel`'s pool for ``threads``, as a
    future; with ``threads`` < 2 or from inside a pool worker it runs at once on the calling
    thread (its future already done), so a worker never waits for its own pool."""
    if threads < 2 or getattr(_IN_POOL, "active", False):
        done: Future[R] = Future()
        try:
            done.set_result(work())
        except Exception as error:  # raised by result(), as a pool worker's would be
            done.set_exception(error)
        return done
    return _pool(threads).submit(_marked_in_pool(lambda _: work()), None)


def _open_onnxruntime(path: str, threads: int, name: str) -> OpenedNet:
    session = onnx_session(path, threads, name)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ValueError(f"{name}: {path} has {len(inputs)} inputs, expected one")
    input_name, first = inputs[0].name, [outputs[0].name]

    def run(x: np.ndarray) -> np.ndarray:
        result: np.ndarray = session.run(first, {input_name: x})[0]
        return result

    def run_all(x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(session.run(None, {input_name: x}))

    return OpenedNet(
        "onnxruntime", run, run_all, (input_name,), (_ort_shape(inputs[0].shape),),
        tuple(o.name for o in outputs), tuple(_ort_shape(o.shape) for o in outputs),
        dict(session.get_modelmeta().custom_metadata_map),
    )


def _ort_shape(shape: object) -> Shape | None:
    if not isinstance(shape, (list, tuple)):
        return None
    return tuple(d if isinstance(d, (int, str)) else None for d in shape)
