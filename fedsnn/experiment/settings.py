"""Everything built from a RunConfig for the floors below it, each decision written once.

The floors below the experiment never see a RunConfig: they take the typed
objects made here (``AttackConfig``, ``GaminConfig``) and a concrete torch
device name. ``resolve_device`` is the one place 'auto' is decided, so
training, the gradient attacks and GAMIN always run on the same device.
"""

from __future__ import annotations

import torch

from attacks import AttackConfig, AuxiliaryData
from attacks.blackbox import GaminConfig
from fedsnn.experiment.config import RunConfig


def resolve_device(name: str) -> str:
    """'cpu' | 'cuda' | 'auto' -> the concrete device: 'auto' is 'cuda' when one is visible."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def attack_config(cfg: RunConfig, auxiliary: AuxiliaryData | None = None) -> AttackConfig:
    """The curious server's attack settings (the optimiser's lr is the attack's own default).

    ``auxiliary``: the data the attacker declares (``fedsnn.experiment.auxiliary``:
    by default the test split, checked disjoint from every shard); the learned
    attack needs it, and its ``source`` goes into every record that used it.
    """
    return AttackConfig(auxiliary=auxiliary,
        optimizer=cfg.attack_optimizer, iterations=cfg.attack_iterations, grnn_iterations=cfg.attack_iterations,
        restarts=cfg.attack_restarts, seed=cfg.seed, thresholding=cfg.thresholding, tau=cfg.tau,
        fedavg_handling=cfg.fedavg_handling, time_budget_s=cfg.attack_time_budget or None, max_samples=cfg.attack_samples,
        tolerance=cfg.attack_tolerance,
        device=resolve_device(cfg.device),
    )


def gamin_config(cfg: RunConfig) -> GaminConfig:
    """LeNet-shaped global models get the convolutional generator and surrogate."""
    return GaminConfig(budget=cfg.gamin_budget, architecture="conv", seed=cfg.seed, device=resolve_device(cfg.device))
