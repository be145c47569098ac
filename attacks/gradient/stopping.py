"""When an optimisation stops and which restart is kept: written once, for both loops.

``Trace`` is how one run went, ``Attempt`` one restart's outcome.

The one-at-a-time loop (``attacks.gradient.optimise.optimise``) and the
batched engine (``attacks.batched``: one ``StopRule`` per slot) call the same
three decisions:

- ``StopRule.observe``: after each objective evaluation at the start of a
  step, record the loss and decide whether the run stops, and why:
  'diverged' (non-finite loss), 'converged' (loss below tolerance), or
  'budget' with one of the reasons 'N iterations spent', 'stalled: ...'
  (loss unchanged for ``patience`` steps) or 'time budget spent ...';
- ``keep_better``: the restart that is kept (lowest loss; any finite run beats
  a diverged one);
- ``restart_due``: whether another restart runs (not converged, restarts
  left, time left).

``dummy_stop_settings`` and ``time_budget`` read the AttackConfig for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from attacks.core import TIME_GUARD, AttackConfig


@dataclass
class Trace:
    """How one optimisation went. ``best_loss`` is the loss of the state the
    variables hold once ``optimise`` returns."""

    status: str = "budget"
    reason: str = ""
    losses: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    iterations: int = 0
    evaluations: int = 0


@dataclass
class Attempt:
    """One restart's outcome: the dummy in model-input layout, its label
    distribution [B, K] and labels [B] (long), its trace, and the state it
    started from (model-input layout; scored as a control by the evaluator)."""

    dummy: torch.Tensor
    probs: torch.Tensor
    labels: torch.Tensor
    trace: Trace
    initial: torch.Tensor | None = None


class StopRule:
    """The stop decisions of one run (one victim's restart), step by step.

    Parameters
    ----------
    iterations : int
        Optimiser steps allowed; the evaluation after the last step only scores it.
    tolerance : float
        'converged' once a loss is below it.
    stall_patience : int
        'stalled' after this many consecutive steps with an unchanged loss; 0 = never.
    keep_initial : bool
        Whether the untouched initial state may be the best one (False for
        Algorithm 2, which must return a binarised, i.e. updated, state).
    """

    def __init__(self, iterations: int, tolerance: float, stall_patience: int, keep_initial: bool) -> None:
        self.iterations, self.tolerance, self.patience = iterations, tolerance, stall_patience
        self.keep_initial = keep_initial
        self.trace = Trace(reason=f"{iterations} iterations spent")
        self.step, self.unchanged, self.previous = 0, 0, math.nan

    def observe(self, loss: float, out_of_time: bool) -> tuple[bool, bool]:
        """Record ``loss``, the objective at the state before step ``self.step``.

        ``out_of_time``: whether the run's clock has passed its time budget.
        Returns (improved, stop): ``improved`` when this state is the new best
        (the caller keeps a copy of it), ``stop`` when no further step is taken
        (``trace.status`` and ``trace.reason`` then say why).
        """
        trace, step = self.trace, self.step
        if not math.isfinite(loss):
            trace.status, trace.reason = "diverged", f"non-finite matching loss ({loss}) at step {step}"
            return False, True
        trace.losses.append(loss)
        improved = (step > 0 or self.keep_initial) and loss < trace.best_loss
        if improved:
            trace.best_loss = loss
        if loss < self.tolerance:
            trace.status, trace.reason = "converged", f"matching loss {loss:.3g} < {self.tolerance:g} at step {step}"
            return improved, True
        if step == self.iterations:
            return improved, True
        trace.iterations += 1
        self.unchanged = self.unchanged + 1 if loss == self.previous else 0
        self.previous = loss
        if self.patience and self.unchanged >= self.patience:
            trace.reason = f"stalled: loss unchanged for {self.unchanged} steps at {loss:.4g}"
            return improved, True
        if out_of_time:
            trace.reason = f"{TIME_GUARD} after {trace.iterations} steps (wall-clock safety limit)"
            return improved, True
        self.step += 1
        return improved, False


def keep_better(held: Attempt | None, current: Attempt) -> Attempt:
    """The restart to keep: the lower best loss, and any finite run over a diverged one."""
    if held is None or current.trace.best_loss < held.trace.best_loss or (
        held.trace.status == "diverged" and current.trace.status != "diverged"
    ):
        return current
    return held


def restart_due(last: Trace, restarts_run: int, restarts: int, out_of_time: bool) -> bool:
    """Whether another restart runs after ``restarts_run`` of ``restarts``, the last ending as ``last``."""
    return last.status != "converged" and restarts_run < restarts and not out_of_time


def dummy_stop_settings(config: AttackConfig) -> dict[str, Any]:
    """``StopRule``'s settings for every run of a dummy attack (DLG, iDLG), alone or in a slot.

    Algorithm 2 (``thresholding='in'``) must return a binarised, i.e. updated,
    state, so its untouched start is never kept.
    """
    return {"iterations": config.iterations, "tolerance": config.tolerance,
            "stall_patience": config.stall_patience, "keep_initial": config.thresholding != "in"}


def time_budget(config: AttackConfig) -> float:
    """Seconds one attack may take over all its restarts; inf when unbudgeted."""
    return config.time_budget_s or math.inf
