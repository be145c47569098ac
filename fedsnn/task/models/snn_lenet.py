"""SNN-LeNet: LeNet's topology with every Sigmoid replaced by a spiking neuron.

SpikingJelly multi-step neurons (``step_mode='m'``) integrate the conv output
over T timesteps; the last Linear layer is not spiking: its output (the
membrane potential of a non-leaky readout) is averaged over T and used as
logits::

    x [T, B, C, H, W] -> (conv -> IF/LIF) x 3 -> flatten [T, B, hidden]
      -> fc [T, B, classes] -> mean over T -> logits [B, classes]

A static image [B, C, H, W] is replicated over T (frame replication); event
data arrive as T frames [T, B, C, H, W]. Neuron state is reset before every
forward pass, so no state leaks between batches, clients or attack steps.
Surrogate gradients flow in eval() mode and support double backward.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import functional, neuron
from torch import nn

from fedsnn.task.models.lenet import conv_stack, hidden_size
from fedsnn.task.models.surrogate import SURROGATES

NEURONS = ("if", "lif")


def make_neuron(kind: str, surrogate: str) -> nn.Module:
    """A SpikingJelly multi-step neuron: threshold 1, hard reset to 0.

    ``if``:  v[t] = v[t-1] + x[t]
    ``lif``: v[t] = v[t-1] + (x[t] - v[t-1]) / tau, tau = 2
    spike[t] = H(v[t] - 1); after a spike v is reset to 0.
    """
    surrogate_fn = SURROGATES[surrogate]()
    if kind == "if":
        return neuron.IFNode(surrogate_function=surrogate_fn, step_mode="m", detach_reset=False)
    if kind == "lif":
        return neuron.LIFNode(tau=2.0, surrogate_function=surrogate_fn, step_mode="m", detach_reset=False)
    raise ValueError(f"unknown neuron {kind!r}; expected one of {NEURONS}")


class SNNLeNet(nn.Module):
    """Spiking LeNet. Input [B, C, H, W] (replicated over T) or [T, B, C, H, W]."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        timesteps: int = 20,
        neuron_kind: str = "if",
        surrogate: str = "atan",
    ) -> None:
        super().__init__()
        self.timesteps = timesteps
        conv1, conv2, conv3 = conv_stack(input_shape[0])
        self.conv1, self.conv2, self.conv3 = conv1, conv2, conv3
        self.sn1, self.sn2, self.sn3 = (make_neuron(neuron_kind, surrogate) for _ in range(3))
        self.fc = nn.Linear(hidden_size(input_shape), num_classes)

    def as_frames(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [T, B, C, H, W] by replication; 5-D input passes through."""
        if x.dim() == 5:
            return x
        return x.unsqueeze(0).expand(self.timesteps, *x.shape)

    @staticmethod
    def _conv_spike(conv: nn.Conv2d, sn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = conv(x.flatten(0, 1))  # conv over all timesteps at once: [T*B, C', H', W']
        return sn(y.view(t, b, *y.shape[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(self)
        x = self.as_frames(x)
        x = self._conv_spike(self.conv1, self.sn1, x)
        x = self._conv_spike(self.conv2, self.sn2, x)
        x = self._conv_spike(self.conv3, self.sn3, x)
        return self.fc(x.flatten(2)).mean(0)

    def firing_rates(self, x: torch.Tensor) -> list[float]:
        """Mean spike rate of each spiking layer for input ``x`` (a diagnostic:
        an attack on a silent network is not an attack that failed)."""
        rates = []
        with torch.no_grad():
            functional.reset_net(self)
            h = self.as_frames(x)
            for conv, sn in ((self.conv1, self.sn1), (self.conv2, self.sn2), (self.conv3, self.sn3)):
                h = self._conv_spike(conv, sn, h)
                rates.append(float(h.mean()))
        functional.reset_net(self)
        return rates
