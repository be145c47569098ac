"""LeNet and SNN-LeNet as functions of weights stacked on a leading victim axis.

The batched attacks (``attacks.batched.engine``) invert V independent victims at once.
Each victim has its own weights, so a layer is one *grouped* convolution whose
groups are the victims: activations travel as ``[N, V * C, H, W]`` (N = batch,
or T * batch on an SNN) and a victim's channels only ever meet its own
weights. Nothing mixes victims, so victim v's logits, gradients and matching
loss depend on victim v's inputs alone, and an autograd gradient of the *sum*
of the per-victim losses is exactly the stack of per-victim gradients (no
vmap needed, and our surrogate spikes work with plain autograd and double
backward).

The spiking neuron is SpikingJelly's IF/LIF with threshold 1 and hard reset to
0 (detach_reset=False), written out (equality is tested)::

    IF:  h[t] = v[t-1] + x[t]                LIF: h[t] = v[t-1] + (0 - v[t-1] + x[t]) / 2
    s[t] = Heaviside(h[t] - 1) (surrogate backward);  v[t] = (1 - s[t]) * h[t]

By default it runs as one autograd node over all T steps
(``fused_neuron.fused_spike_train``); ``spike_train_per_step`` is the same
neuron as per-step autograd ops, kept as the reference the fused form is tested against.

A static image replicated over T feeds conv1 the same input at every step, so
conv1 runs once instead of T times (``kind='image'``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedsnn.task.models.fused_neuron import LIF_TAU, fused_spike_train
from fedsnn.task.models.lenet import KERNEL, STRIDES, ModelSpec
from fedsnn.task.models.surrogate import SURROGATES

CONVS = ("conv1", "conv2", "conv3")


def grouped_conv(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int) -> torch.Tensor:
    """Each victim's conv on its own channel group.

    h: [N, V*C, H, W]; weight: [V, O, C, k, k]; bias: [V, O] -> [N, V*O, H', W'].
    """
    return F.conv2d(h, weight.flatten(0, 1), bias.flatten(), stride=stride, padding=KERNEL // 2,
                    groups=weight.shape[0])


def readout(params: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """The Linear classifier per victim: h [N, V, hidden] -> logits [V, N, K].

    Written as W [V, K, hidden] @ h [V, hidden, N] so that the weight's
    gradient comes out contiguous in W's own layout: the einsum form gave a
    transposed [V, hidden, K] gradient that made every elementwise op of the
    matching loss on it (sub, pow, mul and their backward) ~10x slower.
    """
    return torch.baddbmm(params["fc.bias"][:, :, None], params["fc.weight"], h.permute(1, 2, 0)).transpose(1, 2)


def lenet_logits(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Sigmoid LeNet of V victims: x [V, B, C, H, W] -> logits [V, B, K]."""
    v, b = x.shape[:2]
    h = x.transpose(0, 1).flatten(1, 2)  # [B, V*C, H, W]
    for name, stride in zip(CONVS, STRIDES):
        h = torch.sigmoid(grouped_conv(h, params[f"{name}.weight"], params[f"{name}.bias"], stride))
    return readout(params, h.reshape(b, v, -1))


def spike_train(z: torch.Tensor, timesteps: int, neuron: str, spike: nn.Module, constant: bool,
                fused: bool = True) -> torch.Tensor:
    """Multi-step IF/LIF: the fused node (default) or ``spike_train_per_step``; same arguments and result."""
    return (fused_spike_train if fused else spike_train_per_step)(z, timesteps, neuron, spike, constant)


def spike_train_per_step(z: torch.Tensor, timesteps: int, neuron: str, spike: nn.Module,
                         constant: bool) -> torch.Tensor:
    """Multi-step IF/LIF as per-step autograd ops (equations in the module docstring).

    z: [T, ...] input currents, or one [...] current fed at every step when
    ``constant``. Returns spikes [T, ...] (float 0/1, surrogate gradient).
    """
    # unbind, not z[t]: each z[t]'s backward would allocate and zero-fill a full
    # [T, ...] gradient (cost growing with T^2); unbind's backward stacks once.
    currents = [z] * timesteps if constant else z.unbind(0)
    v = torch.zeros_like(currents[0])
    out = []
    for x in currents:
        h = v + x if neuron == "if" else v + (0.0 - v + x) / LIF_TAU
        s = spike(h - 1.0)
        v = (1.0 - s) * h
        out.append(s)
    return torch.stack(out)


def snn_logits(params: dict[str, torch.Tensor], x: torch.Tensor, spec: ModelSpec, kind: str,
               fused: bool = True) -> torch.Tensor:
    """SNN-LeNet of V victims; logits = fc of the mean spike count of layer 3.

    x: [V, B, C, H, W] static images (kind 'image') or [V, T, B, C, H, W]
    per-step frames/events. Returns logits [V, B, K]. The mean over T is taken
    before fc (equal, by linearity, to SNNLeNet's mean of per-step fc outputs).
    ``fused=False`` runs ``spike_train_per_step`` (the reference, for tests and benches).
    """
    steps, spike = spec.timesteps, SURROGATES[spec.surrogate]()
    v = x.shape[0]
    if kind == "image":
        b = x.shape[1]
        z = grouped_conv(x.transpose(0, 1).flatten(1, 2), params["conv1.weight"], params["conv1.bias"], STRIDES[0])
        s = spike_train(z, steps, spec.neuron, spike, constant=True, fused=fused)  # [T, B, V*12, H1, W1]
    else:
        b = x.shape[2]
        h = x.permute(1, 2, 0, 3, 4, 5).flatten(2, 3).flatten(0, 1)  # [T*B, V*C, H, W]
        z = grouped_conv(h, params["conv1.weight"], params["conv1.bias"], STRIDES[0])
        s = spike_train(z.view(steps, b, *z.shape[1:]), steps, spec.neuron, spike, constant=False, fused=fused)
    for name, stride in zip(CONVS[1:], STRIDES[1:]):
        z = grouped_conv(s.flatten(0, 1), params[f"{name}.weight"], params[f"{name}.bias"], stride)
        s = spike_train(z.view(steps, b, *z.shape[1:]), steps, spec.neuron, spike, constant=False, fused=fused)
    return readout(params, s.mean(0).reshape(b, v, -1))


def stacked_logits(params: dict[str, torch.Tensor], x: torch.Tensor, spec: ModelSpec, kind: str,
                   fused: bool = True) -> torch.Tensor:
    """Dispatch on the architecture: [V, ...] dummies -> logits [V, B, K] (``fused``: see ``snn_logits``)."""
    if spec.name == "lenet":
        return lenet_logits(params, x)
    if spec.name == "snn-lenet":
        return snn_logits(params, x, spec, kind, fused)
    raise ValueError(f"no functional form of model {spec.name!r}")
