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
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, Union, cast

if TYPE_CHECKING:
    import onnxruntime

PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")

#: Where the package's own models are shipped.
MODEL_DIR = Path(__file__).resolve().parent / "models"
#: The MTCNN cascade's depthwise-separable nets: P-, R-, O-net and the landmark net.
DETECTOR_MODELS = tuple(MODEL_DIR / f"ds_mtcnn_{net}.onnx" for net in ("pnet", "rnet", "onet", "lnet"))
#: The learned face-mask segmentation net (:class:`masksegx.learned.MaskNet`).
MASKNET_MODEL = MODEL_DIR / "masknet.onnx"
#: The multi-attribute net (:class:`masksegx.attributes.AttributePredictor`).
ATTRIBUTES_MODEL = MODEL_DIR / "attributes.onnx"


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
    (one inter-op thread). onnxruntime's warnings are not shown (older exports list every
    initializer as a graph input, and it warns about each one). ValueError, naming the argument
    ``name``, when onnxruntime cannot load the file.
    """
    return cached(path, ("onnxruntime", threads), lambda p: _open_session(p, threads, name))


def _open_session(path: str, threads: int, name: str) -> onnxruntime.InferenceSession:
    import onnxruntime  # imported on use: slow to import, and the native detector runs without it

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1 if threads else 0
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise ValueError(f"{name}: onnxruntime cannot load {path}: {error}") from None
