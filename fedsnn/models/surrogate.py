"""Surrogate spike functions that work under torch.func and double backward.

Forward is the Heaviside step ``spike = (x >= 0)``; backward replaces its
derivative with a smooth one. They match SpikingJelly 2.0's ``surrogate.ATan``
and ``surrogate.Sigmoid`` (same formulas, same default alpha; a test checks it),
but are written with ``setup_context`` and ``generate_vmap_rule`` so that
``torch.func.vmap``/``grad`` accept them, and their backward uses only
differentiable ops so gradient matching can take a gradient of a gradient.

    ATan:    d spike / dx = (alpha / 2) / (1 + (pi / 2 * alpha * x) ** 2),  alpha = 2
    Sigmoid: d spike / dx = alpha * s * (1 - s),  s = sigmoid(alpha * x),   alpha = 4
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _heaviside(x: torch.Tensor) -> torch.Tensor:
    return (x >= 0).to(x.dtype)


class _ATanSpike(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, alpha: float) -> torch.Tensor:
        return _heaviside(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, alpha = inputs
        ctx.save_for_backward(x)
        ctx.alpha = alpha

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        slope = (ctx.alpha / 2) / (1 + (math.pi / 2 * ctx.alpha * x) ** 2)
        return grad_output * slope, None


class _SigmoidSpike(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, alpha: float) -> torch.Tensor:
        return _heaviside(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, alpha = inputs
        ctx.save_for_backward(x)
        ctx.alpha = alpha

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.alpha * x)
        return grad_output * ctx.alpha * s * (1 - s), None


class ATan(nn.Module):
    """Heaviside forward, arctan-derivative backward (SpikingJelly's default)."""

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ATanSpike.apply(x, self.alpha)


class Sigmoid(nn.Module):
    """Heaviside forward, sigmoid-derivative backward."""

    def __init__(self, alpha: float = 4.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SigmoidSpike.apply(x, self.alpha)


SURROGATES: dict[str, type[nn.Module]] = {"atan": ATan, "sigmoid": Sigmoid}
