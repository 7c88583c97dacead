"""Segmentation nets for the learned face-mask path: MaskNet (shipped) and a small U-Net (baseline).

Both map a face crop to a mask probability map at the same resolution, with one interface so that
:class:`masksegx.learned.MaskNet` runs either ONNX file:

- input ``input``: float32 ``[N, 3, S, S]``, **BGR** (as OpenCV reads images), pixel values
  ``0..255`` (the normalisation ``(x / 255 - 0.5) / 0.25`` is inside the graph);
- output ``prob``: float32 ``[N, 1, S, S]``, sigmoid probability of "worn face mask".

``S = INPUT_SIZE`` (160) for the shipped models (any multiple of 16 works: the graphs are fully
convolutional with fixed x2 upsampling); the batch axis is dynamic.

MaskNet: a depthwise-separable encoder-decoder (MobileNet-style blocks: depthwise 3x3 + BN +
ReLU, pointwise 1x1 + BN + ReLU), encoder strides 2/4/8/16 with widths 24/40/80/128, a dilated
block and a global-context branch (global average pool -> 1x1 -> added to every position) at
1/16, and a light decoder (bilinear x2, concatenate the skip, pointwise + separable block) back
to 1/2, a 1x1 head and a bilinear x2 to the input size.

UNet: Ronneberger et al.'s layout, scaled down: two standard 3x3 conv + BN + ReLU per level,
widths 16/32/64/128, 2x2 max pooling, bilinear x2 + concatenation in the decoder. It is the
"small U-Net" row of Table 4, trained by the same command on the same data
(``--arch unet``) for a fair comparison.
"""

from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 160
ARCHS = ("masknet", "unet")
#: Normalisation applied inside the graphs: (x / 255 - MEAN) / STD.
MEAN, STD = 0.5, 0.25


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


class SeparableBlock(nn.Sequential):
    """Depthwise 3x3 (stride, dilation) + BN + ReLU, pointwise 1x1 + BN + ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, stride, padding=dilation, dilation=dilation, groups=cin, bias=False),
            *_bn_relu(cin),
            nn.Conv2d(cin, cout, 1, bias=False),
            *_bn_relu(cout),
        )


class _Residual(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual: torch.Tensor = self.block(x)
        return x + residual


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class _Normalise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * (1.0 / (255.0 * STD))) - (MEAN / STD)


class MaskNet(nn.Module):
    """Depthwise-separable encoder-decoder (see the module docstring)."""

    def __init__(self, widths: tuple[int, int, int, int] = (24, 40, 80, 128)) -> None:
        super().__init__()
        c0, c1, c2, c3 = widths
        self.normalise = _Normalise()
        self.stem = nn.Sequential(nn.Conv2d(3, c0, 3, 2, 1, bias=False), *_bn_relu(c0))  # 1/2
        self.enc1 = nn.Sequential(SeparableBlock(c0, c1, 2), _Residual(SeparableBlock(c1, c1)))  # 1/4
        self.enc2 = nn.Sequential(SeparableBlock(c1, c2, 2), _Residual(SeparableBlock(c2, c2)))  # 1/8
        self.enc3 = nn.Sequential(
            SeparableBlock(c2, c3, 2),
            _Residual(SeparableBlock(c3, c3)),
            _Residual(SeparableBlock(c3, c3, dilation=2)),
        )  # 1/16
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c3, c3, 1), nn.ReLU(inplace=True))
        self.dec2 = nn.Sequential(
            nn.Conv2d(c3 + c2, c2, 1, bias=False), *_bn_relu(c2), SeparableBlock(c2, c2)
        )
        self.dec1 = nn.Sequential(
            nn.Conv2d(c2 + c1, c1, 1, bias=False), *_bn_relu(c1), SeparableBlock(c1, c1)
        )
        self.dec0 = nn.Sequential(
            nn.Conv2d(c1 + c0, c0, 1, bias=False), *_bn_relu(c0), SeparableBlock(c0, c0)
        )
        self.head = nn.Conv2d(c0, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalise(x)
        s0 = self.stem(x)
        s1 = self.enc1(s0)
        s2 = self.enc2(s1)
        s3 = self.enc3(s2)
        s3 = s3 + self.context(s3)
        d = self.dec2(torch.cat([_up(s3), s2], 1))
        d = self.dec1(torch.cat([_up(d), s1], 1))
        d = self.dec0(torch.cat([_up(d), s0], 1))
        return _up(self.head(d))


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), *_bn_relu(cout),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), *_bn_relu(cout),
    )


class UNet(nn.Module):
    """A small standard U-Net (see the module docstring)."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.normalise = _Normalise()
        self.down = nn.ModuleList()
        cin = 3
        for w in widths:
            self.down.append(_double_conv(cin, w))
            cin = w
        self.up = nn.ModuleList(
            _double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1))
        )
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalise(x)
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([_up(x), skip], 1))
        logits: torch.Tensor = self.head(x)
        return logits


#: A segmentation net: both map a BGR batch to ``logits`` (and ``forward`` to probabilities).
SegmentationNet = Union[MaskNet, UNet]


def build(arch: str) -> SegmentationNet:
    if arch == "masknet":
        return MaskNet()
    if arch == "unet":
        return UNet()
    raise ValueError(f"arch: expected one of {ARCHS}, got {arch!r}")


def count_parameters_and_macs(net: nn.Module, size: int = INPUT_SIZE) -> tuple[int, int]:
    """Trainable parameters and multiply-accumulates of conv layers for one ``size``^2 input."""
    macs = 0

    def hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        k = module.kernel_size[0] * module.kernel_size[1]
        macs += output.numel() // output.shape[0] * k * module.in_channels // module.groups

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    net.train(was_training)
    for handle in handles:
        handle.remove()
    return sum(p.numel() for p in net.parameters() if p.requires_grad), macs
