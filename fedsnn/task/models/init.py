"""Weight initialisation schemes; the scheme is part of every result's config.

DLG and iDLG succeed almost only with the U(-0.5, 0.5) init their papers use;
with PyTorch's default init they fail nearly always (on MNIST, iDLG on LeNet
rebuilt 16/16 digits under U(-0.5, 0.5) and none under the default init:
simulations/results/snn_settings/README.md).
ANN and SNN fleets must share the scheme for a fair comparison.
"""

from __future__ import annotations

import torch
from torch import nn

INITS = ("uniform-0.5", "default")


def initialise(model: nn.Module, scheme: str, generator: torch.Generator | None = None) -> None:
    """Re-initialise every weight and bias of ``model`` in place.

    ``uniform-0.5``: all parameters U(-0.5, 0.5), drawn from ``generator``.
    ``default``: PyTorch's own per-layer init (``reset_parameters``), which
    draws from the global RNG; seed it with ``torch.manual_seed`` first.
    """
    if scheme == "uniform-0.5":
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.rand(p.shape, generator=generator) - 0.5)
    elif scheme == "default":
        for m in model.modules():
            if hasattr(m, "reset_parameters") and m is not model:
                m.reset_parameters()
    else:
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {INITS}")
