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
from collections.abc import Callable

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


class _Surrogate(nn.Module):
    """Heaviside forward; backward through ``slope`` (its derivative ``curvature``
    serves the fused neuron's double backward). Subclasses name the three functions."""

    # (x, alpha) -> tensor, set by each subclass
    slope_fn: Callable
    curvature_fn: Callable
    slope_inplace_fn: Callable

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Spike.apply(x, self.alpha, type(self).slope_fn)

    def slope(self, x: torch.Tensor) -> torch.Tensor:
        """The derivative backward uses, at x."""
        return type(self).slope_fn(x, self.alpha)

    def curvature(self, x: torch.Tensor) -> torch.Tensor:
        """The derivative of ``slope`` at x."""
        return type(self).curvature_fn(x, self.alpha)

    def slope_(self, x: torch.Tensor) -> torch.Tensor:
        """``slope`` overwriting the scratch tensor x (outside autograd)."""
        return type(self).slope_inplace_fn(x, self.alpha)


class ATan(_Surrogate):
    """Heaviside forward, arctan-derivative backward (SpikingJelly's default)."""

    slope_fn, curvature_fn, slope_inplace_fn = (staticmethod(atan_slope), staticmethod(atan_curvature),
                                                staticmethod(atan_slope_))

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__(alpha)


class Sigmoid(_Surrogate):
    """Heaviside forward, sigmoid-derivative backward."""

    slope_fn, curvature_fn, slope_inplace_fn = (staticmethod(sigmoid_slope), staticmethod(sigmoid_curvature),
                                                staticmethod(sigmoid_slope_))

    def __init__(self, alpha: float = 4.0) -> None:
        super().__init__(alpha)


SURROGATES: dict[str, type[nn.Module]] = {"atan": ATan, "sigmoid": Sigmoid}
