"""The multi-attribute network (paper §2): VGG-11 trimmed, depthwise-separable, 1x1x22 head.

VGG-11's convolutions are 64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512 (Conv8), M
(M = 2x2 max pooling), then FC (4096), FC2 (4096) and FC3 (1000). As the paper says, Conv8, FC
and FC2 are removed and FC3 becomes a 1x1 convolution with 22 outputs; here a global average pool
brings the last feature map to 1x1 first (so any input size works). Every convolution except the
first (3 input channels, where a depthwise split saves nothing) is depthwise separable: 3x3
depthwise + BN + ReLU, then 1x1 pointwise + BN + ReLU. ``width`` scales every channel count.

Heads: ``joint`` = one 1x1x22 layer + softmax over {female, male} x {level 0..10} (the paper's);
``separate`` = a 2-way gender and an 11-way level softmax whose outer product is the joint
(an ablation; the exported file has the same [N, 22] output either way).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

N_LEVELS = 11
VGG11_TRIMMED: tuple[int | Literal["M"], ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, "M")
HEADS = ("joint", "separate")


def channels(width: float) -> list[int | Literal["M"]]:
    return [v if v == "M" else max(8, int(round(v * width))) for v in VGG11_TRIMMED]


class AttributeNet(nn.Module):
    def __init__(self, width: float = 0.5, head: str = "joint", dropout: float = 0.2) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head: expected one of {HEADS}, got {head!r}")
        self.head_kind = head
        layers: list[nn.Module] = []
        cin = 3
        for v in channels(width):
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            if cin == 3:
                layers += [nn.Conv2d(3, v, 3, padding=1, bias=False), nn.BatchNorm2d(v),
                           nn.ReLU(inplace=True)]
            else:
                layers += [
                    nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                    nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                    nn.Conv2d(cin, v, 1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True),
                ]
            cin = v
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        if head == "joint":
            self.fc3 = nn.Conv2d(cin, 2 * N_LEVELS, 1)
        else:
            self.gender_head = nn.Conv2d(cin, 2, 1)
            self.level_head = nn.Conv2d(cin, N_LEVELS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log joint probabilities [N, 22] (female levels 0..10, then male levels 0..10)."""
        h = self.dropout(F.adaptive_avg_pool2d(self.features(x), 1))
        if self.head_kind == "joint":
            return F.log_softmax(self.fc3(h).flatten(1).float(), dim=1)
        gender = F.log_softmax(self.gender_head(h).flatten(1).float(), dim=1)
        level = F.log_softmax(self.level_head(h).flatten(1).float(), dim=1)
        return (gender[:, :, None] + level[:, None, :]).flatten(1)


def mirrored_probs(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Joint probabilities averaged over the input and its mirror image (gender and coverage
    do not change under a horizontal flip): the test-time rule of the shipped model."""
    both = torch.cat([x, torch.flip(x, dims=[3])])
    probs = torch.exp(net(both))
    return 0.5 * (probs[: x.shape[0]] + probs[x.shape[0]:])


class ExportWrapper(nn.Module):
    """Float32 NCHW input -> softmax probabilities [N, 22] (what the ONNX file computes), the
    mean over the input and its mirror image when ``mirror``."""

    def __init__(self, net: AttributeNet, mirror: bool = True) -> None:
        super().__init__()
        self.net = net
        self.mirror = mirror

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mirrored_probs(self.net, x) if self.mirror else torch.exp(self.net(x))


def count_macs(width: float, size: int) -> tuple[int, int]:
    """(parameters, multiply-accumulates) of the trunk + joint head at input ``size``."""
    params = macs = 0
    cin, side = 3, size
    for v in channels(width):
        if v == "M":
            side //= 2
            continue
        if cin == 3:
            params += 27 * v
            macs += side * side * 27 * v
        else:
            params += 9 * cin + cin * v
            macs += side * side * (9 * cin + cin * v)
        cin = v
    params += cin * 2 * N_LEVELS + 2 * N_LEVELS
    return params, macs + cin * 2 * N_LEVELS
