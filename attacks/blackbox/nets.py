"""Generator and surrogate networks for GAMIN, sized from the input shape.

``fc`` (default, for the paper's flat FC targets): the target sees a flattened
vector with no spatial prior, so a fully connected surrogate lies in the same
hypothesis class as the target (what fidelity F_S measures) and a fully
connected generator is the cheapest map onto that vector space::

    G: z [B, Z] -> Linear 256 -> LeakyReLU -> Linear 512 -> LeakyReLU -> Linear D -> Sigmoid -> [B, C, H, W]
    S: x [B, C, H, W] -> flatten [B, D] -> Linear 512 -> ReLU -> Linear 256 -> ReLU -> Linear K -> logits

``conv`` (for convolutional targets such as the federation's LeNet): image
priors help both nets when the target itself is translation-aware::

    G: z -> Linear -> [64, ceil(H/4), ceil(W/4)] -> (Upsample x2, Conv3x3, LeakyReLU) x 2
         -> Conv3x3 to C -> crop to H x W -> Sigmoid
    S: Conv5x5 s2 (32) -> ReLU -> Conv5x5 s2 (64) -> ReLU -> AdaptiveAvgPool 4x4 -> Linear K

Generators output inputs in [0, 1] (Sigmoid), the range every target accepts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fedsnn.errors import ConfigError

ARCHITECTURES = ("fc", "conv")


class FCGenerator(nn.Module):
    def __init__(self, z_dim: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.input_shape = input_shape
        self.net = nn.Sequential(
            nn.Linear(z_dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, math.prod(input_shape)), nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(len(z), *self.input_shape)


class ConvGenerator(nn.Module):
    def __init__(self, z_dim: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        c, self.h, self.w = input_shape
        self.h0, self.w0 = math.ceil(self.h / 4), math.ceil(self.w / 4)
        self.fc = nn.Linear(z_dim, 64 * self.h0 * self.w0)
        self.net = nn.Sequential(nn.LeakyReLU(0.2), *_upsample(), *_upsample(), nn.Conv2d(64, c, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(self.fc(z).view(len(z), 64, self.h0, self.w0))
        return torch.sigmoid(x[..., : self.h, : self.w])


def _upsample() -> list[nn.Module]:
    """Double the spatial size, keep 64 channels."""
    return [nn.Upsample(scale_factor=2), nn.Conv2d(64, 64, 3, padding=1), nn.LeakyReLU(0.2)]


def fc_surrogate(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
        nn.Linear(256, num_classes),
    )


def conv_surrogate(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(input_shape[0], 32, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(32, 64, 5, stride=2, padding=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, num_classes),
    )


def build_pair(
    architecture: str, z_dim: int, input_shape: tuple[int, int, int], num_classes: int
) -> tuple[nn.Module, nn.Module]:
    """(generator z [B, Z] -> x [B, C, H, W], surrogate x -> logits [B, K])."""
    if architecture == "fc":
        return FCGenerator(z_dim, input_shape), fc_surrogate(input_shape, num_classes)
    if architecture == "conv":
        return ConvGenerator(z_dim, input_shape), conv_surrogate(input_shape, num_classes)
    raise ConfigError("gamin-architecture", architecture, ARCHITECTURES)
