"""Input encodings that turn static inputs into spike trains for SNNs.

Every encoder maps a batch ``x`` of shape ``[B, ...]`` (values in [0, 1]) to a
time-major tensor ``[T, B, ...]``, the layout snntorch loops iterate over:

- ``replicate``: the same analogue frame at every step (frame replication);
- ``rate``: Bernoulli spikes with P(spike) = x at every step (the GAMIN-SNN
  paper's encoding); equal in distribution to ``snntorch.spikegen.rate`` and
  about 4x faster because it draws all T steps in one ``torch.rand`` call;
- ``latency``: exactly one spike per input element, earlier for brighter
  values (the paper's proposed future work).

Example::

    >>> x = torch.tensor([[0.0, 1.0]])
    >>> latency(x, 5)[:, 0].tolist()
    [[0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
"""

from __future__ import annotations

import torch

from fedsnn.errors import ConfigError

ENCODINGS = ("rate", "latency")


def replicate(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Repeat ``x`` [B, ...] over time -> [T, B, ...] (a view, no copy)."""
    return x.unsqueeze(0).expand(timesteps, *x.shape)


def rate(x: torch.Tensor, timesteps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli rate code: ``[B, ...] -> [T, B, ...]`` of 0/1 in ``x.dtype``.

    Each element spikes independently at every step with probability
    ``clamp(x, 0, 1)``. The single ``rand(T, *x.shape)`` draw makes this the
    fast equivalent of ``snntorch.spikegen.rate(x, num_steps=T)``. No gradient
    flows through it (the targets are attacked as black boxes).
    """
    noise = torch.rand((timesteps, *x.shape), generator=generator, dtype=x.dtype, device=x.device)
    return (noise < x.clamp(0, 1)).to(x.dtype)


def latency(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Time-to-first-spike code: ``[B, ...] -> [T, B, ...]``, one spike per element.

    Rule (linear, deterministic): an element of value ``v = clamp(x, 0, 1)``
    fires once, at step ``t = floor((1 - v) * (T - 1) + 0.5)``; so v = 1 fires
    at step 0, v = 0 at the last step T - 1, and equal values fire together.
    Unlike ``snntorch.spikegen.latency`` (an RC-circuit time constant and a
    threshold below which inputs fire last) this rule has no free parameter,
    which keeps ANN/SNN comparisons free of one more tuning knob.
    """
    steps = torch.floor((1 - x.clamp(0, 1)) * (timesteps - 1) + 0.5).long()
    time = torch.arange(timesteps, device=x.device).view(timesteps, *([1] * x.dim()))
    return (time == steps.unsqueeze(0)).to(x.dtype)


def encode(x: torch.Tensor, timesteps: int, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dispatch to the encoder ``kind`` (one of ``ENCODINGS``): [B, ...] -> [T, B, ...]."""
    if kind == "rate":
        return rate(x, timesteps, generator)
    if kind == "latency":
        return latency(x, timesteps)
    raise ConfigError("encoding", kind, ENCODINGS)
