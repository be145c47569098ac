"""Surrogate spike functions that work under torch.func and double backward.

Forward is the Heaviside step ``spike = (x >= 0)``; backward replaces its
derivative with a smooth one. They match SpikingJelly 2.0's ``surrogate.ATan``
and ``surrogate.Sigmoid`` (same formulas, same default alpha; a test checks it),
but are written with ``setup_context`` and ``generate_vmap_rule`` so that
``torch.func.vmap``/``grad`` accept them, and their backward uses only
differentiable ops so gradient matching can take a gradient of a gradient.

    ATan:    d spike / dx = (alpha / 2) / (1 + (pi / 2 * alpha * x) ** 2),  alpha = 2
    Sigmoid: d spike / dx = alpha * s * (1 - s),  s = sigmoid(alpha * x),   alpha = 4

``slope`` and ``curvature`` (the slope's own derivative) are exposed for the
fused neuron (``fused_neuron``), which writes its double backward by hand.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def atan_slope(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)


def sigmoid_slope(x: torch.Tensor, alpha: float) -> torch.Tensor:
    s = torch.sigmoid(alpha * x)
    return alpha * s * (1 - s)


def atan_slope_(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """``atan_slope`` overwriting x (a scratch tensor, outside autograd): no temporaries.
    Equal to ``atan_slope`` up to rounding (1 / d * c instead of c / d)."""
    return x.mul_(math.pi / 2 * alpha).square_().add_(1).reciprocal_().mul_(alpha / 2)


def sigmoid_slope_(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """``sigmoid_slope`` overwriting x (a scratch tensor, outside autograd): one temporary."""
    s = x.mul_(alpha).sigmoid_()
    return s.mul_(1 - s).mul_(alpha)


def atan_curvature(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """d atan_slope / dx = -alpha k^2 x / (1 + (k x)^2)^2, k = pi / 2 * alpha."""
    k = math.pi / 2 * alpha
    return x * (-alpha * k * k) / (1 + (k * x) ** 2) ** 2


def sigmoid_curvature(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """d sigmoid_slope / dx = alpha * slope * (1 - 2 s), s = sigmoid(alpha * x)."""
    s = torch.sigmoid(alpha * x)
    return (alpha * alpha) * s * (1 - s) * (1 - 2 * s)


class _Spike(torch.autograd.Function):
    """Heaviside forward; backward multiplies by ``slope(x, alpha)``, built from
    differentiable ops so the backward itself can be differentiated."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, alpha: float, slope) -> torch.Tensor:
        return (x >= 0).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, ctx.alpha, ctx.slope = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.slope(x, ctx.alpha), None, None


class ATan(nn.Module):
    """Heaviside forward, arctan-derivative backward (SpikingJelly's default)."""

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Spike.apply(x, self.alpha, atan_slope)

    def slope(self, x: torch.Tensor) -> torch.Tensor:
        """The derivative backward uses, at x."""
        return atan_slope(x, self.alpha)

    def curvature(self, x: torch.Tensor) -> torch.Tensor:
        """The derivative of ``slope`` at x."""
        return atan_curvature(x, self.alpha)

    def slope_(self, x: torch.Tensor) -> torch.Tensor:
        """``slope`` overwriting the scratch tensor x (outside autograd)."""
        return atan_slope_(x, self.alpha)


class Sigmoid(nn.Module):
    """Heaviside forward, sigmoid-derivative backward."""

    def __init__(self, alpha: float = 4.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Spike.apply(x, self.alpha, sigmoid_slope)

    def slope(self, x: torch.Tensor) -> torch.Tensor:
        """The derivative backward uses, at x."""
        return sigmoid_slope(x, self.alpha)

    def curvature(self, x: torch.Tensor) -> torch.Tensor:
        """The derivative of ``slope`` at x."""
        return sigmoid_curvature(x, self.alpha)

    def slope_(self, x: torch.Tensor) -> torch.Tensor:
        """``slope`` overwriting the scratch tensor x (outside autograd)."""
        return sigmoid_slope_(x, self.alpha)


SURROGATES: dict[str, type[nn.Module]] = {"atan": ATan, "sigmoid": Sigmoid}
