"""What an attack hands back: its reconstruction together with its own statistics."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

STATUSES = ("converged", "budget", "diverged", "failed")


@dataclass(frozen=True)
class Reconstruction:
    """One attack's output on one observed update.

    Attributes
    ----------
    samples : torch.Tensor
        float, in the data's own layout: [B, C, H, W] for images (also for an
        SNN attacked with a per-timestep dummy, averaged over T), [B, T, C, H, W]
        for event data. Empty ([0]) when the attack failed before it had a dummy.
    labels : torch.Tensor
        long [B]: the labels the attack used or inferred, aligned with ``samples``.
    status : str
        'converged' (matching loss below tolerance), 'budget' (iteration or time
        budget spent, or the optimiser stalled, before reaching tolerance),
        'diverged' (the loss or the dummy became non-finite) or 'failed' (an
        exception inside the attack; see ``reason``).
    reason : str
        Human-readable cause of the status.
    loss_history : list[float]
        Matching loss after every optimiser step of the kept restart.
    final_loss : float
        Lowest finite matching loss of the kept candidate (inf if none).
    iterations : int
        Optimiser steps taken, over all restarts.
    evaluations : int
        Objective (closure) evaluations, over all restarts.
    wall_time_s : float
        Wall-clock time of the whole attack.
    initial : torch.Tensor | None
        The kept restart's starting point, in the layout of ``samples`` (the
        grey dummy, or GRNN's first generator output): the evaluator scores it
        as a control, so a reconstruction is read against where it began.
    diagnostics : dict[str, object]
        Attack-specific facts, e.g. 'observed_grad_norm' (name -> float),
        'firing_rates' (per spiking layer, on the final dummy) so that an
        attack that failed can be told from a network that stayed silent.
    """

    samples: torch.Tensor
    labels: torch.Tensor
    status: str
    reason: str = ""
    loss_history: list[float] = field(default_factory=list)
    final_loss: float = float("inf")
    iterations: int = 0
    evaluations: int = 0
    wall_time_s: float = 0.0
    diagnostics: dict[str, object] = field(default_factory=dict)
    initial: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r}; expected one of {STATUSES}")

    @property
    def ok(self) -> bool:
        """True when the attack ran to an end of its own (converged or budget)."""
        return self.status in ("converged", "budget")

    def with_samples(self, samples: torch.Tensor, **diagnostics: object) -> "Reconstruction":
        """A copy with other samples (e.g. thresholded), extra diagnostics merged in."""
        return replace(self, samples=samples, diagnostics={**self.diagnostics, **diagnostics})

    @classmethod
    def failed(cls, reason: str, wall_time_s: float = 0.0) -> "Reconstruction":
        """The result of an attack that raised: no samples, the reason kept."""
        return cls(
            samples=torch.empty(0), labels=torch.empty(0, dtype=torch.long), status="failed",
            reason=reason, wall_time_s=wall_time_s,
        )
