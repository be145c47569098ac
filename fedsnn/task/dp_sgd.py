"""DP-SGD on the client: per-sample gradients, each clipped to C, summed, Gaussian noise sigma*C added.

One step on a batch of B samples (Abadi et al. 2016)::

    g_i = grad loss(x_i, y_i)                        per sample, every parameter
    g   = (sum_i g_i * min(1, C / ||g_i||) + N(0, (sigma C)^2 I)) / B
    w  <- w - lr * g

Per-sample gradients come from Opacus' ``GradSampleModule`` where Opacus
handles the model (LeNet), else from ``torch.func`` (vmap over samples of
grad of a functional call). Opacus cannot handle SNN-LeNet: its hooks take
dim 0 of every layer's input as the batch, but the spiking convolutions see
[T*B, ...] and the readout [T, B, ...], so for B=4, T=20 Opacus returns
per-"sample" gradients of shape [80, ...] and [20, ...] instead of [4, ...].
Both paths share the clipping and the noise below, so both fleets get the
same mechanism. Noise is drawn from torch's global generator, which the
client seeds per (seed, partition, round).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from opacus import GradSampleModule
from torch import nn
from torch.func import functional_call, grad, vmap

from fedsnn.task.data import LabelledData
from fedsnn.task.models import SNNLeNet
from fedsnn.task.training import _model_input


def per_sample_backend(model: nn.Module) -> str:
    """'torch.func' for models whose layers mix time into the batch dim (SNN-LeNet), else 'opacus'."""
    return "torch.func" if isinstance(model, SNNLeNet) else "opacus"


def per_sample_gradients(model: nn.Module, data: LabelledData, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """{parameter name: [B, *parameter shape]} gradients of each sample's cross-entropy."""
    if per_sample_backend(model) == "opacus":
        wrapped = GradSampleModule(model, loss_reduction="sum")
        try:
            wrapped.zero_grad(set_to_none=True)
            F.cross_entropy(wrapped(_model_input(data, x)), y, reduction="sum").backward()
            grads = {name: p.grad_sample.detach().clone() for name, p in model.named_parameters()}
        finally:
            wrapped._close()  # remove Opacus' hooks and grad_sample attributes: the model is plain again
            model.zero_grad(set_to_none=True)
        return grads
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def sample_loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (p, buffers), (_model_input(data, xi.unsqueeze(0)),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    return vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)


def private_gradient(per_sample: dict[str, torch.Tensor], clip_norm: float, noise_multiplier: float) -> dict[str, torch.Tensor]:
    """Clip each sample's gradient to L2 norm <= C, sum, add N(0, (sigma C)^2), divide by B."""
    batch = next(iter(per_sample.values())).shape[0]
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_sample.values()))  # [B]
    scale = (clip_norm / norms.clamp_min(1e-12)).clamp(max=1.0)  # [B]
    out = {}
    for name, g in per_sample.items():
        clipped_sum = torch.einsum("b,b...->...", scale, g)
        out[name] = (clipped_sum + noise_multiplier * clip_norm * torch.randn_like(clipped_sum)) / batch
    return out


def train_local_dp(model: nn.Module, data: LabelledData, batches: list[np.ndarray], lr: float,
                   clip_norm: float, noise_multiplier: float, device: str = "cpu") -> dict[str, float]:
    """``training.train_local`` with DP-SGD steps; the same metrics, plus the per-sample backend."""
    model.to(device).train()
    losses, correct, seen = [], 0, 0
    start = time.perf_counter()
    for idx in batches:
        x, y = data.samples[idx].to(device), data.labels[idx].to(device)
        with torch.no_grad():
            logits = model(_model_input(data, x))
        losses.append(float(F.cross_entropy(logits, y)))
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        step = private_gradient(per_sample_gradients(model, data, x, y), clip_norm, noise_multiplier)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p -= lr * step[name]
    return {
        "train-loss": float(np.mean(losses)),
        "train-accuracy": correct / max(seen, 1),
        "train-seconds": time.perf_counter() - start,
    }
