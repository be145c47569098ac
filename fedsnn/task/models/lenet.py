"""LeNet as used by every gradient-inversion paper (DLG, iDLG, GRNN).

Three 5x5 convolutions with 12 channels, padding 2 and strides (2, 2, 1),
each followed by a Sigmoid, then one Linear layer::

    x [B, C, H, W] -> conv1 -> sigmoid -> conv2 -> sigmoid -> conv3 -> sigmoid
      -> flatten [B, 12 * ceil(H/4) * ceil(W/4)] -> fc -> logits [B, classes]

hidden = 588 for 1x28x28 and 768 for 3x32x32. Smooth activations are what
makes DLG work: with ReLU the matching problem loses most of its information.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

CHANNELS = 12
KERNEL = 5
STRIDES = (2, 2, 1)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a victim model (the attacker knows it too).

    input_shape: (C, H, W) of one sample; for event data C is the polarity count.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    init: str = "uniform-0.5"
    timesteps: int = 20
    neuron: str = "if"
    surrogate: str = "atan"


def conv_stack(in_channels: int) -> list[nn.Conv2d]:
    """The three LeNet convolutions, shared by the ANN and the SNN."""
    convs, c = [], in_channels
    for stride in STRIDES:
        convs.append(nn.Conv2d(c, CHANNELS, KERNEL, stride=stride, padding=KERNEL // 2))
        c = CHANNELS
    return convs


def hidden_size(input_shape: tuple[int, int, int]) -> int:
    """Flattened feature size after the conv stack: 12 * ceil(H/4) * ceil(W/4)."""
    _, h, w = input_shape
    for stride in STRIDES:
        h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
    return CHANNELS * h * w


class LeNet(nn.Module):
    """Sigmoid LeNet. Input [B, C, H, W] in [0, 1]; output logits [B, classes]."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        conv1, conv2, conv3 = conv_stack(input_shape[0])
        self.conv1, self.conv2, self.conv3 = conv1, conv2, conv3
        self.act = nn.Sigmoid()
        self.fc = nn.Linear(hidden_size(input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.act(self.conv3(x))
        return self.fc(x.flatten(1))
