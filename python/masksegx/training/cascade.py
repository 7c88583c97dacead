"""A minimal MTCNN cascade on the PyTorch nets, for hard-negative mining during training only.

The package's detector (``masksegx.detect``) runs the exported ONNX files; this one runs the nets
being trained, so R-net samples can be mined before anything is exported. Same conventions as
facenet-pytorch's MTCNN: pyramid factor 0.709 from ``12 / min_face``, P-net cells mapped to
``[(2j + 1) / s, (2i + 1) / s, (2j + 12) / s, (2i + 12) / s]`` (floored), NMS 0.5 per scale and
0.7 over all scales and after R-net, box regression ``b + reg * (x2 - x1 + 1)``, then squared.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt
import torch

from .._models import onnx_session
from ..nms import nms
from .samples import crop_square

PYRAMID_FACTOR = 0.709
PNET_STRIDE, PNET_CELL = 2, 12
#: P-net proposals passed on per image at most (the best scoring): an undertrained P-net can
#: fire on thousands of windows, and mining needs a sample of its mistakes, not all of them.
MAX_PROPOSALS = 400

#: Boxes ``[M, 4]`` as ``x1, y1, x2, y2`` (inclusive pixels).
Boxes = npt.NDArray[np.float64]


class StageNet(Protocol):
    """A cascade stage: a PyTorch net (``nn.Module``) or an :class:`OnnxNet`; called on a
    normalised NCHW batch, it returns the stage's outputs, ``prob`` last."""

    def eval(self) -> StageNet: ...

    def __call__(self, x: torch.Tensor) -> Sequence[torch.Tensor]: ...


def normalise(images_rgb: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] RGB -> float NCHW, ``(x - 127.5) / 128``."""
    tensor = torch.from_numpy(np.ascontiguousarray(images_rgb)).permute(0, 3, 1, 2).float()
    return (tensor - 127.5) / 128.0


def regress(boxes: Boxes, offsets: npt.NDArray[np.float32]) -> Boxes:
    sides = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1], axis=1)
    return boxes + offsets * np.tile(sides, 2)


def square(boxes: Boxes) -> Boxes:
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None] / 2
    return np.concatenate([centres - half, centres + half], axis=1)


@torch.no_grad()
def propose(pnet: StageNet, image: np.ndarray, min_face: int, threshold: float) -> Boxes:
    """P-net stage: squared candidate boxes [M, 4] (scores dropped)."""
    height, width = image.shape[:2]
    scale = PNET_CELL / min_face
    candidates: list[Boxes] = []
    scores: list[npt.NDArray[np.float32]] = []
    while min(height, width) * scale >= PNET_CELL:
        size = (int(width * scale + 1), int(height * scale + 1))
        resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        reg, prob = (t[0].numpy() for t in pnet(normalise(resized[None])))
        rows, cols = np.nonzero(prob[1] > threshold)
        if rows.size:
            boxes = np.stack([
                np.floor((PNET_STRIDE * cols + 1) / scale),
                np.floor((PNET_STRIDE * rows + 1) / scale),
                np.floor((PNET_STRIDE * cols + PNET_CELL) / scale),
                np.floor((PNET_STRIDE * rows + PNET_CELL) / scale),
            ], axis=1)
            boxes = regress(boxes, reg[:, rows, cols].T)
            cell_scores = prob[1, rows, cols]
            keep = nms(boxes, cell_scores, 0.5)
            candidates.append(boxes[keep])
            scores.append(cell_scores[keep])
        scale *= PYRAMID_FACTOR
    if not candidates:
        return np.zeros((0, 4))
    boxes, all_scores = np.concatenate(candidates), np.concatenate(scores)
    keep = nms(boxes, all_scores, 0.7)[:MAX_PROPOSALS]
    return square(boxes[keep])


@torch.no_grad()
def refine(net: StageNet, image: np.ndarray, boxes: Boxes, size: int,
           threshold: float, batch: int = 512, squared: bool = True) -> Boxes:
    """R- (or O-) net stage on square ``boxes``: kept and regressed boxes, squared for the
    next stage unless ``squared`` is False (the final output)."""
    if len(boxes) == 0:
        return boxes
    boxes = np.round(boxes)
    crops = np.stack([
        crop_square(image, int(b[0]), int(b[1]), int(b[2] - b[0] + 1), size) for b in boxes
    ])
    regs: list[npt.NDArray[np.float32]] = []
    probs: list[npt.NDArray[np.float32]] = []
    for start in range(0, len(crops), batch):
        outputs = net(normalise(crops[start : start + batch]))
        regs.append(outputs[0].numpy())
        probs.append(outputs[-1][:, 1].numpy())
    reg, prob = np.concatenate(regs), np.concatenate(probs)
    confident = prob > threshold
    boxes, reg, prob = boxes[confident], reg[confident], prob[confident]
    keep = nms(boxes, prob, 0.7)
    boxes = regress(boxes[keep], reg[keep])
    return square(boxes) if squared else boxes


class OnnxNet:
    """An exported (or reference) ONNX net behind the PyTorch nets' call interface."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.session = onnx_session(str(path), 0)
        self.names = [output.name for output in self.session.get_outputs()]

    def eval(self) -> OnnxNet:
        return self

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.from_numpy(v) for v in self.session.run(self.names, {"input": x.numpy()})]


class Cascade:
    """Callable ``image_rgb -> boxes [M, 4]``: P-net, then R-net and O-net when given (the
    last stage's boxes are not squared)."""

    def __init__(self, pnet: StageNet, rnet: StageNet | None = None,
                 onet: StageNet | None = None, *, min_face: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)) -> None:
        self.pnet = pnet.eval()
        self.refiners = [(net.eval(), size) for net, size in ((rnet, 24), (onet, 48)) if net]
        self.min_face, self.thresholds = min_face, thresholds

    def __call__(self, image: np.ndarray) -> Boxes:
        boxes = propose(self.pnet, image, self.min_face, self.thresholds[0])
        for index, (net, size) in enumerate(self.refiners):
            last = index == len(self.refiners) - 1
            boxes = refine(net, image, boxes, size, self.thresholds[index + 1], squared=not last)
        return boxes
