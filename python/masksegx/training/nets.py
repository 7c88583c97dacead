"""P-, R- and O-nets of MTCNN (Zhang et al. 2016), depthwise-separable (paper §2, eq. 1-10).

Layout: the standard MTCNN nets (channel widths, pooling, heads as in facenet-pytorch's
``PNet``/``RNet``/``ONet``), except that every 3x3 convolution after the first layer is a
depthwise 3x3 convolution (``groups = C_in``) followed by a pointwise 1x1 convolution, with one
PReLU after the pointwise conv only: the pair is one linear map followed by one non-linearity,
like the 3x3 conv it replaces (MobileNet's separable block without batch norm). The first layer
and the max-pool after it become one standard 4x4 stride-2 conv (3 input channels: separating it
would save almost nothing; the same window and stride as conv + pool, computed on a quarter of
the positions, without the full-resolution PReLU and pool that were most of the detector's
time); the P-net's has 16 channels (MTCNN: 10) to make up for the lost pool. The 2x2 convs
of R- and O-net stay standard too (the executor's general conv runs them; a 2x2 depthwise kernel
would be one more kernel shape for little gain: they hold 12k / 33k of the 89k / 340k
parameters).

``separable=False`` builds the plain-conv MTCNN layout, for counting (eq. 1-10) and as an ablation.

Export contract (our C++ executor runs these graphs): only Conv (standard, strided, depthwise, 1x1),
PRelu, MaxPool (ceil_mode=1), Flatten, Gemm and Softmax. No batch norm; the R/O-net features are
flattened in NCHW order (no Transpose, unlike the Caffe-converted reference weights).
Input ``input`` = RGB, ``(pixel - 127.5) / 128``, NCHW. Outputs: P-net ``reg`` [N,4,h,w] and
``prob`` [N,2,h,w] with ``h = pnet_output_side(H)``; R-net ``reg`` [N,4], ``prob`` [N,2];
O-net ``reg`` [N,4], ``landmarks`` [N,10] (x1..x5, y1..y5 as fractions of the box), ``prob``
[N,2]. Channel/column 1 of ``prob`` is the face probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Union, overload

import torch
from torch import nn

#: The detector's stages, in cascade order.
DetectorStage = Literal["pnet", "rnet", "onet"]
STAGES: tuple[DetectorStage, ...] = ("pnet", "rnet", "onet")
#: The landmark net: run on the O-net's crops of the faces it keeps (:class:`LNet`).
LANDMARK_STAGE = "lnet"
#: Input side of each stage (P-net: the training crop; it is fully convolutional).
INPUT_SIZE = {"pnet": 12, "rnet": 24, "onet": 48, LANDMARK_STAGE: 48}
OUTPUT_NAMES = {
    "pnet": ("reg", "prob"),
    "rnet": ("reg", "prob"),
    "onet": ("reg", "landmarks", "prob"),
    LANDMARK_STAGE: ("landmarks",),
}


def conv3x3(in_channels: int, out_channels: int, separable: bool) -> nn.Sequential:
    """A 3x3 'valid' conv + PReLU, depthwise-separable or standard."""
    if separable:
        layers = [
            nn.Conv2d(in_channels, in_channels, 3, groups=in_channels),
            nn.Conv2d(in_channels, out_channels, 1),
        ]
    else:
        layers = [nn.Conv2d(in_channels, out_channels, 3)]
    return nn.Sequential(*layers, nn.PReLU(out_channels))


def first_conv(out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, out_channels, 3), nn.PReLU(out_channels))


#: Channels of our P-net's 4x4 stride-2 first layer.
PNET_STEM = 16


def pool(kernel: int) -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel, 2, ceil_mode=True)


class PNet(nn.Module):
    """Fully convolutional proposal net: 12x12 window, stride 2.

    Standard layout: 3x3 conv (3 -> 10), 2x2 max-pool, 3x3 convs 10 -> 16 -> 32. Ours
    (``separable=True``) starts with a 4x4 stride-2 conv (3 -> 16) in place of the 3x3 conv and
    the pool (the same 12x12 window and stride 2 with a quarter of the first layer's outputs and no
    full-resolution PReLU or pool: the first layer dominates the P-net's time on large pyramid
    levels), then depthwise-separable 3x3 blocks 16 -> 16 -> 32.
    """

    def __init__(self, separable: bool = True) -> None:
        super().__init__()
        if separable:
            stem = [nn.Conv2d(3, PNET_STEM, 4, stride=2), nn.PReLU(PNET_STEM)]
            self.body = nn.Sequential(
                *stem, conv3x3(PNET_STEM, 16, True), conv3x3(16, 32, True)
            )
        else:
            self.body = nn.Sequential(
                first_conv(10), pool(2), conv3x3(10, 16, False), conv3x3(16, 32, False)
            )
        self.prob_head = nn.Conv2d(32, 2, 1)
        self.reg_head = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.reg_head(features), torch.softmax(self.prob_head(features), dim=1)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training view on 12x12 crops: (class logits [N,2], box offsets [N,4])."""
        features = self.body(x)
        return self.prob_head(features).flatten(1), self.reg_head(features).flatten(1)


class RNet(nn.Module):
    """Refinement net on 24x24 crops."""

    def __init__(self, separable: bool = True) -> None:
        super().__init__()
        # Ours: a 4x4 stride-2 conv in place of the 3x3 conv and the 3x3 pool (24 -> 11 either
        # way), as in our P-net; the 22x22 first layer and its pool were half the R-net's time.
        # Ours is also narrower (16 and 32 channels where MTCNN has 28 and 48): 9.3 instead of
        # 13.1 us per crop on our kernels, the same AP50 on the facemask validation split
        # (0.712 against 0.708 with 28 and 48 channels).
        widths = (16, 32) if separable else (28, 48)
        stem = (
            [nn.Conv2d(3, widths[0], 4, stride=2), nn.PReLU(widths[0])] if separable
            else [*first_conv(widths[0]), pool(3)]
        )
        self.body = nn.Sequential(
            *stem,
            conv3x3(widths[0], widths[1], separable), pool(3),
            nn.Conv2d(widths[1], 64, 2), nn.PReLU(64),
            nn.Flatten(),
            nn.Linear(64 * 3 * 3, 128), nn.PReLU(128),
        )
        self.prob_head = nn.Linear(128, 2)
        self.reg_head = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.reg_head(features), torch.softmax(self.prob_head(features), dim=1)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.prob_head(features), self.reg_head(features)


def trunk48(stem: list[nn.Module], third: int, separable: bool) -> nn.Sequential:
    """The O-net's trunk on 48x48 crops after ``stem`` (which leaves 32 channels at 23x23):
    3x3 block 32 -> 64, 3x3 pool, 3x3 block 64 -> ``third``, 2x2 pool, 2x2 conv to 128,
    FC 1152 -> 256 (layer indices, hence weight names, as in the standard layout)."""
    return nn.Sequential(
        *stem,
        conv3x3(32, 64, separable), pool(3),
        conv3x3(64, third, separable), pool(2),
        nn.Conv2d(third, 128, 2), nn.PReLU(128),
        nn.Flatten(),
        nn.Linear(128 * 3 * 3, 256), nn.PReLU(256),
    )


class ONet(nn.Module):
    """Output net on 48x48 crops, with the 5 landmarks."""

    def __init__(self, separable: bool = True) -> None:
        super().__init__()
        # Ours: a 4x4 stride-2 conv in place of the 3x3 conv and the 3x3 pool (48 -> 23 either
        # way), as in our P- and R-net.
        stem = (
            [nn.Conv2d(3, 32, 4, stride=2), nn.PReLU(32)] if separable
            else [*first_conv(32), pool(3)]
        )
        self.body = trunk48(stem, 64, separable)
        self.prob_head = nn.Linear(256, 2)
        self.reg_head = nn.Linear(256, 4)
        self.landmark_head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return (
            self.reg_head(features),
            self.landmark_head(features),
            torch.softmax(self.prob_head(features), dim=1),
        )

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.prob_head(features), self.reg_head(features), self.landmark_head(features)


class LNet(nn.Module):
    """Landmark net on the O-net's 48x48 crops: the 5 landmarks only.

    The O-net's landmark head shares a trunk with face classification and box regression and,
    trained on our 5k landmark faces, stayed coarse (held-out cuhk5pt NME 0.100). A separate
    trunk trained on landmarks alone does far better on the same data, and running it on the
    kept faces only (a few per photo, not every R-net box) keeps it cheap. Layout: the O-net's
    with a full-resolution 3x3 stem (32 channels) and its max-pool in place of the 4x4
    stride-2 stem (landmarks need the finer first layer: 4.0 M multiply-adds against the
    O-net's 2.7 M), and 96 channels in the third block (O-net: 64).
    """

    def __init__(self, separable: bool = True) -> None:
        super().__init__()
        self.body = trunk48([*first_conv(32), pool(3)], 96, separable)
        self.landmark_head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.landmark_head(self.body(x)),)


NETS = {"pnet": PNet, "rnet": RNet, "onet": ONet, LANDMARK_STAGE: LNet}
#: A detector stage's net (what training calls ``logits`` on).
DetectorNet = Union[PNet, RNet, ONet]


@overload
def build(stage: Literal["pnet"], separable: bool = True) -> PNet: ...
@overload
def build(stage: Literal["rnet"], separable: bool = True) -> RNet: ...
@overload
def build(stage: Literal["onet"], separable: bool = True) -> ONet: ...
@overload
def build(stage: Literal["lnet"], separable: bool = True) -> LNet: ...
@overload
def build(stage: DetectorStage, separable: bool = True) -> DetectorNet: ...
@overload
def build(stage: str, separable: bool = True) -> nn.Module: ...


def build(stage: str, separable: bool = True) -> nn.Module:
    """A fresh net for ``stage`` (``pnet``, ``rnet``, ``onet`` or ``lnet``)."""
    if stage not in NETS:
        raise ValueError(f"stage: expected one of {tuple(NETS)}, got {stage!r}")
    return NETS[stage](separable)


def pnet_output_side(side: int, separable: bool = True) -> int:
    """P-net output cells along an input side (>= 12): ``floor((side - 4) / 2) - 3`` for ours
    (4x4 stride-2 stem), ``ceil((side - 2) / 2) - 4`` for the standard layout (its ceil-mode pool
    adds a last, partial window on odd sides; the two agree on even sides)."""
    if separable:
        return (side - 4) // 2 - 3
    return -(-(side - 2) // 2) - 4


def count_parameters_and_macs(net: nn.Module, input_shape: Sequence[int]) -> tuple[int, int]:
    """(parameters, multiply-adds) of the Conv2d and Linear layers for one input of ``input_shape``
    (C, H, W). Conv: ``k_h k_w (C_in / groups) C_out`` weights and as many MACs per output pixel
    (eq. 1-8); Linear: ``in * out``. Biases count as parameters, not as MACs; PReLU, pooling and
    softmax are left out (they are not multiply-adds)."""
    counts = {"parameters": 0, "macs": 0}

    def record(
        module: nn.Conv2d | nn.Linear, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        weights = module.weight.numel()
        counts["parameters"] += weights + (module.bias.numel() if module.bias is not None else 0)
        # Each weight is used once per output pixel of its own output channel.
        pixels = output.shape[2] * output.shape[3] if output.dim() == 4 else 1
        counts["macs"] += weights * pixels

    hooks = [
        module.register_forward_hook(record)
        for module in net.modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            net(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return counts["parameters"], counts["macs"]
