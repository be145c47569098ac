"""Binarisation of reconstructed spike tensors (FL-SNN paper, Section III-B).

Algorithm 1 (post-optimisation): once the attack ends, x = (x > tau) per timestep.
Algorithm 2 (in-optimisation): after every optimiser update, x = (x > tau);
the attack loop applies it through ``binarise_`` (see ``matching.DummyLayout``).
Both are elementwise, so "per timestep" needs no loop over T.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import torch

from attacks.core import AttackConfig, ObservedUpdate, Reconstruction

TAUS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
ALGORITHMS = ("post", "in")


def binarise(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Algorithm 1: a new tensor, 1.0 where ``x > tau`` and 0.0 elsewhere (same shape, dtype)."""
    return (x > tau).to(x.dtype)


@torch.no_grad()
def binarise_(x: torch.Tensor, tau: float) -> None:
    """Algorithm 2's projection, in place, so that an optimiser keeps its handle on ``x``."""
    x.copy_(binarise(x, tau))


def sweep(
    attack: Callable[[ObservedUpdate, AttackConfig], Reconstruction],
    observed: ObservedUpdate,
    config: AttackConfig,
    taus: Iterable[float] = TAUS,
    algorithms: Iterable[str] = ALGORITHMS,
) -> dict[tuple[str, float], Reconstruction]:
    """Run ``attack`` under every (algorithm, tau) pair, as in Table V of the paper.

    Algorithm 1 needs only one unthresholded attack, binarised afterwards at each
    tau; Algorithm 2 changes the optimisation, so it runs one attack per tau.

    Returns
    -------
    dict
        (algorithm, tau) -> Reconstruction whose samples are binary.
    """
    taus, algorithms = tuple(taus), tuple(algorithms)
    results: dict[tuple[str, float], Reconstruction] = {}
    if "post" in algorithms:
        raw = attack(observed, replace(config, thresholding="none"))
        for tau in taus:
            samples = binarise(raw.samples, tau) if raw.samples.numel() else raw.samples
            results[("post", tau)] = raw.with_samples(samples, thresholding="post", tau=tau)
    if "in" in algorithms:
        for tau in taus:
            results[("in", tau)] = attack(observed, replace(config, thresholding="in", tau=tau))
    return results
