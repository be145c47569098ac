"""IF/LIF over all T steps as ONE autograd node whose backward is itself differentiable.

Why: written step by step (``stacked.spike_train_per_step``), the neuron puts
~5 autograd nodes per step in the graph, and gradient matching runs it three
times (forward, the weight gradient with ``create_graph``, the gradient of
that to the dummy), each pass one small elementwise op after another. Here the
forward is a loop of in-place ops on preallocated [T, ...] buffers outside
autograd, and the backward is the reverse recurrence in a handful of
vectorised differentiable ops plus one ``addcmul`` per step, so
``create_graph=True`` works and the double backward stays short.

Dynamics (SpikingJelly's IFNode/LIFNode, threshold 1, hard reset to 0,
detach_reset=False, LIF tau 2 with decay_input; the same float ops in the same
order as the per-step form, so the spikes are bit-identical; tested)::

    IF:  h[t] = v[t-1] + x[t]            LIF: h[t] = v[t-1] + (x[t] - v[t-1]) / tau
    s[t] = H(h[t] - 1);   v[t] = (1 - s[t]) h[t];   v[-1] = 0

Backward, with sigma[t] = surrogate'(h[t] - 1) and g_v[T-1] = 0 (the reset
path's gradient flows through s too: dv[t]/dh[t] = 1 - s[t] - h[t] sigma[t])::

    g_h[t] = sigma[t] g_s[t] + g_v[t] (1 - s[t] - h[t] sigma[t]) + g_hout[t]
    g_x[t] = a g_h[t],   g_v[t-1] = b g_h[t]     IF: a = b = 1;  LIF: a = 1/tau, b = 1 - 1/tau

The node returns h as a second output and saves (s, h) as outputs: under
``create_graph`` the backward's use of s and h is then tied back to x through
this same node (``g_hout`` is the gradient reaching h that way), which is
what makes the double backward exact.

Example::

    s = fused_spike_train(torch.randn(20, 4, 12, 14, 14), 20, "if", ATan(), constant=False)  # [20, 4, 12, 14, 14]
"""

from __future__ import annotations

import torch
from torch import nn

LIF_TAU = 2.0
THRESHOLD = 1.0


class _FusedNeuron(torch.autograd.Function):
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
            v = h[t].masked_fill(fired[t], 0.0)  # = (1 - s) h
        s = fired.to(x.dtype)
        ctx.neuron, ctx.tau, ctx.spike = neuron, tau, spike
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(s, h)
        return s, h

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor | None, grad_h: torch.Tensor | None):
        s, h = ctx.saved_tensors
        sigma = ctx.spike.slope(h - THRESHOLD)  # [T, ...]
        direct = torch.zeros_like(h) if grad_s is None else grad_s * sigma
        if grad_h is not None:
            direct = direct + grad_h
        carry = 1.0 - s - h * sigma  # d v[t] / d h[t], reset path included
        leak = 1.0 if ctx.neuron == "if" else 1.0 - 1.0 / ctx.tau
        # unbind, not [t]: each [t]'s double backward would zero-fill a full [T, ...] tensor
        direct_t, carry_t = direct.unbind(0), carry.unbind(0)
        steps, g_v = [], None
        for t in reversed(range(len(direct_t))):
            g_h = direct_t[t] if g_v is None else torch.addcmul(direct_t[t], g_v, carry_t[t])
            steps.append(g_h)
            g_v = g_h if ctx.neuron == "if" else g_h * leak
        g_h = torch.stack(steps[::-1])
        return (g_h if ctx.neuron == "if" else g_h / ctx.tau), None, None, None


def fused_spike_train(z: torch.Tensor, timesteps: int, neuron: str, spike: nn.Module, constant: bool,
                      tau: float = LIF_TAU) -> torch.Tensor:
    """Multi-step IF/LIF (module docstring) as one autograd node.

    z: [T, ...] input currents, or one [...] current fed at every step when
    ``constant`` (expanded, not copied; its gradient is the sum over T).
    spike: the surrogate module (``fedsnn.task.models.surrogate``), whose
    ``slope(x)`` is the derivative used backward. Returns spikes [T, ...]
    (float 0/1).
    """
    if neuron not in ("if", "lif"):
        raise ValueError(f"unknown neuron {neuron!r}; expected one of ('if', 'lif')")
    x = z.expand(timesteps, *z.shape) if constant else z
    s, _ = _FusedNeuron.apply(x, neuron, tau, spike)
    return s
