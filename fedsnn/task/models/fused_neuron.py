"""IF/LIF over all T steps as ONE autograd node, with a hand-written double backward.

Why: written step by step (``stacked.spike_train_per_step``), the neuron puts
~5 autograd nodes per step in the graph, and gradient matching runs it three
times (forward, the weight gradient with ``create_graph``, the gradient of
that to the dummy), each pass one small elementwise op after another plus the
stacks and zero-fills that gather the steps. Here each pass is a loop of
in-place ops on preallocated [T, ...] buffers outside autograd (one or two
ops per step) plus a few vectorised ones.

Dynamics (SpikingJelly's IFNode/LIFNode, threshold 1, hard reset to 0,
detach_reset=False, LIF tau 2 with decay_input; the same float ops in the same
order as the per-step form, so the spikes are bit-identical; tested)::

    IF:  h[t] = v[t-1] + x[t]            LIF: h[t] = v[t-1] + (x[t] - v[t-1]) / tau
    s[t] = H(h[t] - 1);   v[t] = (1 - s[t]) h[t];   v[-1] = 0

Backward (``_NeuronBackward.forward``), with sigma[t] = surrogate'(h[t] - 1),
C[t] = dv[t]/dh[t] = 1 - s[t] - h[t] sigma[t] (the reset path's gradient
flows through s too) and IF: a = b = 1, LIF: a = 1/tau, b = 1 - 1/tau::

    g_h[t] = sigma[t] g_s[t] + g_hout[t] + b C[t] g_h[t+1]   (g_h[T] = 0);   g_x[t] = a g_h[t]

Double backward (``_NeuronBackward.backward``), for u = dL/dg_x, the adjoint
w = dL/dg_h runs forward in time, with sigma' = surrogate''(h - 1) and
q[t] = dL/dC[t] = w[t] b g_h[t+1] (q[T-1] = 0)::

    w[t] = a u[t] + b C[t-1] w[t-1]
    dL/dg_s = w sigma,   dL/dg_hout = w,   dL/ds = -q,   dL/dh = sigma' (w g_s - q h) - q sigma

The forward node returns h as a second output and both nodes see (s, h) as
saved outputs: dL/ds and dL/dh flow back into the forward node, hence to x,
which is what makes the double backward exact (tested against the per-step
graph in float64 to 1e-9). A third derivative is not provided (once_differentiable).

Example::

    s = fused_spike_train(torch.randn(20, 4, 12, 14, 14), 20, "if", ATan(), constant=False)  # [20, 4, 12, 14, 14]
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

LIF_TAU = 2.0
THRESHOLD = 1.0


def _rates(neuron: str, tau: float) -> tuple[float, float]:
    """(a, b): the input's and the carried membrane's weight in h (module docstring)."""
    return (1.0, 1.0) if neuron == "if" else (1.0 / tau, 1.0 - 1.0 / tau)


class _Neuron(torch.autograd.Function):
    """x [T, ...] -> (spikes s [T, ...], pre-spike membrane h [T, ...])."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, neuron: str, tau: float, spike: nn.Module):
        h, fired = torch.empty_like(x), torch.empty(x.shape, dtype=torch.bool, device=x.device)
        v = torch.zeros_like(x[0])
        for t in range(x.shape[0]):  # no autograd here: in-place on the buffers
            if neuron == "if":
                torch.add(v, x[t], out=h[t])
            else:
                torch.sub(x[t], v, out=h[t]).div_(tau).add_(v)  # = v + (x - v) / tau, in the per-step order
            torch.ge(h[t], THRESHOLD, out=fired[t])  # = (h - 1 >= 0), exactly, for finite h
            v.copy_(h[t]).masked_fill_(fired[t], 0.0)  # = (1 - s) h
        s = fired.to(x.dtype)
        ctx.args = (neuron, tau, spike)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(s, h)
        return s, h

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor | None, grad_h: torch.Tensor | None):
        s, h = ctx.saved_tensors
        if grad_s is None and grad_h is None:
            return None, None, None, None
        return _NeuronBackward.apply(grad_s, grad_h, s, h, *ctx.args), None, None, None


class _NeuronBackward(torch.autograd.Function):
    """(g_s, g_hout, s, h) -> g_x, the reverse recurrence; its backward is the double backward."""

    @staticmethod
    def forward(ctx, grad_s, grad_h, s, h, neuron: str, tau: float, spike: nn.Module):
        a, b = _rates(neuron, tau)
        sigma = spike.slope_(h - THRESHOLD)
        g = torch.zeros_like(h) if grad_s is None else grad_s * sigma  # becomes g_h, in place
        if grad_h is not None:
            g.add_(grad_h)
        carry = torch.mul(h, sigma).neg_().add_(1.0).sub_(s)  # C = 1 - s - h sigma
        for t in range(h.shape[0] - 2, -1, -1):
            g[t].addcmul_(g[t + 1], carry[t], value=b)
        ctx.args = (a, b, spike)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(grad_s, s, h, sigma, carry, g)
        return g if a == 1.0 else g * a

    @staticmethod
    @once_differentiable
    def backward(ctx, u: torch.Tensor | None):
        if u is None:
            return (None,) * 7
        grad_s, s, h, sigma, carry, g = ctx.saved_tensors
        a, b, spike = ctx.args
        w = u * a if a != 1.0 else u.clone()  # dL/dg_h, in place
        for t in range(1, w.shape[0]):
            w[t].addcmul_(w[t - 1], carry[t - 1], value=b)
        q = torch.zeros_like(h)  # dL/dC
        torch.mul(w[:-1], g[1:], out=q[:-1])
        if b != 1.0:
            q.mul_(b)
        need = ctx.needs_input_grad
        d_grad_s = w * sigma if need[0] else None
        d_h = None
        if need[3]:
            d_h = torch.zeros_like(h) if grad_s is None else w * grad_s
            d_h.addcmul_(q, h, value=-1.0).mul_(spike.curvature(h - THRESHOLD)).addcmul_(q, sigma, value=-1.0)
        d_s = q.neg_() if need[2] else None  # q is not needed after this
        return d_grad_s, (w if need[1] else None), d_s, d_h, None, None, None


def fused_spike_train(z: torch.Tensor, timesteps: int, neuron: str, spike: nn.Module, constant: bool,
                      tau: float = LIF_TAU) -> torch.Tensor:
    """Multi-step IF/LIF (module docstring) as one autograd node.

    z: [T, ...] input currents, or one [...] current fed at every step when
    ``constant`` (expanded, not copied; its gradient is the sum over T).
    spike: the surrogate module (``fedsnn.task.models.surrogate``): its
    ``slope_`` (in place) is the derivative used backward, ``curvature`` the
    slope's derivative used in the double backward. Returns spikes [T, ...]
    (float 0/1).
    """
    if neuron not in ("if", "lif"):
        raise ValueError(f"unknown neuron {neuron!r}; expected one of ('if', 'lif')")
    x = z.expand(timesteps, *z.shape) if constant else z
    s, _ = _Neuron.apply(x, neuron, tau, spike)
    return s
