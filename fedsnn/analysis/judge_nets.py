"""Judge networks (the classifiers behind ``fedsnn.analysis.judges``), one builder.

    lenet   : LeNetJudge, [B, C, H, W] -> [B, K]; two 5x5 conv + ReLU + max-pool stages
    resnet  : FaceResNet, [B, C, 32, 32] -> [B, K]; a small ResNet for faces
    dvs-snn : DVSGestureSNN, [T, B, 2, H, W] -> [B, 11]; the FL-SNN paper's Table I,
              SpikingJelly multi-step LIF neurons with the ATan surrogate
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn


class LeNetJudge(nn.Module):
    """[B, C, H, W] -> logits [B, K]: two 5x5 conv + ReLU + max-pool stages, 7x7 pool, two Linear."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(7),  # identity for 28x28 input; any size works
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 49, 8 * width), nn.ReLU(),
                                  nn.Dropout(0.3), nn.Linear(8 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, 8w], the hidden layer before the class scores (eval: no dropout)."""
        return self.head[:-1](self.features(x))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, identity (or 1x1 strided) shortcut, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class FaceResNet(nn.Module):
    """[B, C, 32, 32] -> logits [B, K]: stem (w), residual stages 2w and 4w (stride 2 each), GAP.

    Kept this small (about 8 M multiply-adds per 32x32 image) so that it
    trains from scratch on one CPU thread in minutes.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 4 * w, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * w, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, 4w], the pooled features before the class scores."""
        return self.net[:-1](x)


def _conv_bn(c_in: int, c_out: int, stride: int) -> nn.Module:
    """Conv3x3 + BN applied to every timestep at once: [T, B, C, H, W] -> [T, B, C', H', W']."""
    return layer.SeqToANNContainer(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out))


def _lif() -> nn.Module:
    return neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode="m", detach_reset=True)


class SpikingResidual(nn.Module):
    """ResidualBlock(c) of Table I: conv-BN-LIF-conv-BN, plus the input, then LIF."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels, 1), _lif(), _conv_bn(channels, channels, 1))
        self.out = _lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + x)


class DVSGestureSNN(nn.Module):
    """Table I judge. [T, B, 2, H, W] spike frames -> logits [B, 11] (mean over T).

    Conv(2->w)-BN-LIF, then stride-2 blocks 2w/4w/8w each followed by a
    residual block, global average pooling, Linear(8w -> K); w = 64 is the paper's.
    """

    def __init__(self, in_channels: int = 2, num_classes: int = 11, width: int = 64) -> None:
        super().__init__()
        stages: list[nn.Module] = [_conv_bn(in_channels, width, 1), _lif()]
        c = width
        for _ in range(3):
            stages += [_conv_bn(c, 2 * c, 2), _lif(), SpikingResidual(2 * c)]
            c *= 2
        self.features = nn.Sequential(*stages)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(self)
        h = self.features(x).mean((-2, -1))  # GAP: [T, B, 8w]
        return self.fc(h).mean(0)


ARCHS: dict[str, tuple[type[nn.Module], int]] = {
    "lenet": (LeNetJudge, 16), "resnet": (FaceResNet, 16), "dvs-snn": (DVSGestureSNN, 64),
}


def build_judge_model(arch: str, in_channels: int, num_classes: int, width: int = 0) -> nn.Module:
    """An untrained judge network; ValueError names the valid architectures."""
    if arch not in ARCHS:
        raise ValueError(f"unknown judge architecture {arch!r}; expected one of {tuple(ARCHS)}")
    cls, default_width = ARCHS[arch]
    return cls(in_channels, num_classes, width or default_width)
