"""Defense mechanisms on a model update, as plain tensor functions (no Flower, no config).

An update is what a client's training changed: ``returned - sent``, a dict of
tensors keyed like the model's state dict. The Flower wiring (client mods in
clients/, strategy wrappers in server/) applies these where a real deployment
applies them; Flower's own DP code (clipping and Gaussian noise) is used
wherever Flower has it, so this module holds only what Flower lacks:

- ``top_k``: keep the k largest-magnitude entries of the whole update
  (Zhu et al. 2019 report DLG fails above ~20% pruning);
- ``quantize``: uniform b-bit quantisation per tensor (2^b levels from the
  tensor's min to its max), the levels a low-precision device would send;
- ``clip_by_norm``: the L2 clipping DP-SGD applies to each sample's gradient;
- ``rdp_epsilon``: Opacus' RDP accountant for a sampled Gaussian mechanism.
"""

from __future__ import annotations

import math

import torch
from opacus.accountants import RDPAccountant

Update = dict[str, torch.Tensor]


def update_between(sent: Update, returned: Update) -> Update:
    """``returned - sent`` per tensor (float tensors only; integer buffers are left out)."""
    return {k: returned[k] - sent[k] for k in sent if sent[k].is_floating_point()}


def apply_update(sent: Update, update: Update) -> Update:
    """``sent + update``, keeping every key of ``sent`` (non-float buffers unchanged)."""
    return {k: sent[k] + update[k] if k in update else sent[k].clone() for k in sent}


def global_norm(update: Update) -> float:
    """L2 norm of all entries of ``update`` taken together."""
    return math.sqrt(sum(float(v.double().pow(2).sum()) for v in update.values()))


def clip_by_norm(update: Update, clip_norm: float) -> Update:
    """Scale ``update`` by min(1, C / ||update||): its global L2 norm is then <= C."""
    scale = min(1.0, clip_norm / max(global_norm(update), 1e-12))
    return {k: v * scale for k, v in update.items()}


def top_k(update: Update, fraction: float) -> Update:
    """Keep the ceil(fraction * n) entries of largest magnitude over the whole update; zero the rest.

    Ties at the threshold are broken by ``torch.topk``'s order, so exactly k
    entries survive (fewer are non-zero only where the update itself is zero).
    """
    flat = torch.cat([v.flatten() for v in update.values()])
    k = max(1, math.ceil(fraction * flat.numel()))
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[flat.abs().topk(k).indices] = True
    out, start = {}, 0
    for name, v in update.items():
        out[name] = torch.where(keep[start : start + v.numel()].view_as(v), v, torch.zeros_like(v))
        start += v.numel()
    return out


def quantize(update: Update, bits: int) -> Update:
    """Round each tensor to the nearest of 2^bits evenly spaced levels spanning [min, max].

    What a receiver can rebuild from b bits per entry plus two floats per
    tensor (min and max). A constant tensor is sent exactly.
    """
    levels = 2**bits - 1  # number of steps between the 2^bits levels
    out = {}
    for name, v in update.items():
        lo, hi = v.min(), v.max()
        step = (hi - lo) / levels
        out[name] = v.clone() if float(step) == 0 else lo + torch.round((v - lo) / step) * step
    return out


def rdp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon after ``steps`` compositions of the sampled Gaussian mechanism (Opacus' RDP accountant).

    ``sample_rate`` is the probability that one record (a sample for DP-SGD,
    a client for central DP) enters a step; 1.0 means no amplification by
    sampling. 0 steps spend nothing.
    """
    if steps == 0:
        return 0.0
    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    return float(accountant.get_epsilon(delta))


def gaussian_mechanism_noise_multiplier(epsilon: float, delta: float) -> float:
    """Noise std / sensitivity of the classic Gaussian mechanism, sqrt(2 ln(1.25/delta)) / epsilon.

    The formula LocalDpMod uses (Dwork and Roth, Thm A.1; a guarantee for
    epsilon < 1); it lets the RDP accountant compose LocalDpMod's rounds.
    """
    return math.sqrt(2 * math.log(1.25 / delta)) / epsilon
