"""ONNX export shared by the trainers: the TorchScript exporter, the ONNX checker and the
comparison of the file (through :func:`masksegx._models.onnx_session`) with the PyTorch net.

The TorchScript exporter (``dynamo=False``) is deprecated, but it gives the plain graph that
the package's C++ executor reads (and that the reference ``mtcnn_*.onnx`` files were made
with). Every graph has one input, ``input`` (N, 3, H, W).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import onnx
    import onnxruntime


def write_onnx(
    net: torch.nn.Module,
    input_shape: Sequence[int],
    path: Path,
    output_names: Sequence[str],
    opset: int,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    quiet: type[Warning] = Warning,
) -> onnx.ModelProto:
    """Export ``net`` (in eval mode, on the CPU) for a zero input of ``input_shape`` to
    ``path``, then load the file and run the ONNX checker on it; returns the loaded model.
    Warnings of category ``quiet`` are silenced during the export."""
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", quiet)
        torch.onnx.export(
            net, (torch.zeros(*input_shape),), str(path), input_names=["input"],
            output_names=list(output_names), opset_version=opset, dynamo=False,
            dynamic_axes=dynamic_axes,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return model


def max_abs_difference(
    net: torch.nn.Module,
    session: onnxruntime.InferenceSession,
    inputs: Iterable[torch.Tensor],
    output_names: Sequence[str],
) -> float:
    """Largest absolute difference between ``net`` and the onnxruntime ``session`` over the
    ``inputs`` (tensors), output by output; RuntimeError when a shape differs."""
    difference = 0.0
    for x in inputs:
        with torch.no_grad():
            expected = net(x)
        if isinstance(expected, torch.Tensor):
            expected = (expected,)
        got = session.run(list(output_names), {"input": x.numpy()})
        for e, g in zip(expected, got):
            e = e.numpy()
            if e.shape != g.shape:
                raise RuntimeError(f"onnxruntime shape {g.shape} != torch {e.shape}")
            difference = max(difference, float(np.abs(e - g).max()))
    return difference
