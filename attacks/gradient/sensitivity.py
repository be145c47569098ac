"""How chaotic the victim's input-to-spike map is: spikes flipped per layer under tiny input noise.

An optimisation attack that stalls on an SNN may have failed, or may face a
map that no gradient can follow: at U(-0.5, 0.5), 1e-4 pixel noise flips
dozens of first-layer spikes (REFERENCE.md section 8). This figure, measured
on the attack's own output (the attacker holds no victim input), is recorded
with each attack on an SNN so that the two cases can be told apart.
"""

from __future__ import annotations

import torch
from torch import nn

NOISE_SIGMA = 1e-4


def spiking_layers(model: nn.Module) -> dict[str, nn.Module]:
    """name -> spiking neuron module (SpikingJelly nodes carry a ``surrogate_function``)."""
    return {name: m for name, m in model.named_modules() if hasattr(m, "surrogate_function")}


@torch.no_grad()
def spike_flips(model: nn.Module, x: torch.Tensor, sigma: float = NOISE_SIGMA, seed: int = 0) -> dict[str, dict[str, float]]:
    """Spikes that change when ``x`` gets N(0, sigma) noise, per spiking layer.

    x: a model input ([B, C, H, W] or [T, B, C, H, W]). Returns
    {layer: {'flipped': count, 'spikes': count on x, 'units': T * B * neurons}};
    empty for a model without spiking layers.
    """
    layers = spiking_layers(model)
    if not layers:
        return {}
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    hooks = [m.register_forward_hook(lambda mod, i, out, name=name: seen[name].append(out.detach()))
             for name, m in layers.items()]
    try:
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(x) * sigma
        model(x)
        model(x + noise)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: {"flipped": float((a != b).sum()), "spikes": float(a.sum()), "units": float(a.numel())}
            for name, (a, b) in seen.items()}
