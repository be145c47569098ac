"""Optimisation over V independent slots, each with its own stop: ``optimise`` for many victims.

``optimise_slots`` is ``attacks.gradient.optimise.optimise`` run for V slots
at once. Every slot keeps its own ``StopRule`` (the one-at-a-time loop's own
stop decisions, ``attacks.gradient.stopping``), best state, evaluation count
and time spent (``SlotProgress``), and its own optimiser state
(``attacks.batched.adam``, ``attacks.batched.lbfgs``); only slots still running
are evaluated. A tick is one objective evaluation of every active slot, then
each slot's own logic. A slot whose victim stopped can be handed a new victim
(``reset`` of the progress and of the optimiser: fresh trace, counters,
history), so one optimisation can serve a queue longer than its slots
(continuous batching, ``attacks.batched.engine``); a fresh slot's first
evaluation is a step start, exactly as a fresh one-at-a-time run's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import torch

from attacks.gradient import StopRule, Trace

LossAndGrad = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # (idx [A], x [A, n]) -> loss, grad
Project = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (victim idx [A], x [A, n]) -> x


class SlotProgress:
    """Each slot's run: its ``StopRule``, best state [V, n], evaluations and share of the time.

    The time budget is per slot and counts the slot's *share* of the batch's
    time (``spent``: each tick's seconds split over the slots it evaluated,
    added by ``optimise_slots``), so a victim is held to the budget it would have alone.
    """

    def __init__(self, x0: torch.Tensor, budget: float, rule_settings: dict[str, Any]) -> None:
        """x0 [V, n]: the slots' first states; budget: seconds per victim; rule_settings: ``StopRule``'s
        keyword arguments (``attacks.gradient.dummy_stop_settings``)."""
        v = x0.shape[0]
        self.rule_settings = dict(rule_settings)
        self.rules = [StopRule(**self.rule_settings) for _ in range(v)]
        self.best = x0.detach().clone()  # [V, n] state of the lowest loss so far
        self.done = torch.zeros(v, dtype=torch.bool, device=x0.device)
        self.evals = torch.zeros(v, dtype=torch.long, device=x0.device)  # objective evaluations counted
        self.spent = torch.zeros(v, dtype=torch.float64)  # seconds: the slot's share of the ticks
        self.budget = budget

    def trace(self, slot: int) -> Trace:
        return self.rules[slot].trace

    def reset(self, slot: int, x0: torch.Tensor, spent: float) -> None:
        """Start a new victim in ``slot`` from x0 [n], ``spent`` seconds already on its clock."""
        self.rules[slot] = StopRule(**self.rule_settings)
        self.best[slot] = x0
        self.done[slot], self.evals[slot], self.spent[slot] = False, 0, spent

    def step_start(self, idx: torch.Tensor, losses: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Record the loss at the start of each slot's step (``StopRule.observe``); bool [A]: which stop now."""
        stop = torch.zeros(len(idx), dtype=torch.bool, device=idx.device)
        spent = self.spent[idx.cpu()].tolist()
        for a, (v, loss) in enumerate(zip(idx.tolist(), losses.tolist())):
            improved, stop[a] = self.rules[v].observe(loss, spent[a] > self.budget)
            if improved:
                self.best[v] = x[a]
        self.done[idx[stop]] = True
        return stop


class SlotOptimiser(Protocol):
    """Per-slot optimiser state in [V, ...] tensors (``BatchedAdam``, ``BatchedLBFGS``)."""

    def reset(self, slots: torch.Tensor, alive: torch.Tensor) -> None:
        """Fresh state for new victims in ``slots``; ``alive``: the other slots still running."""

    def after_eval(self, idx: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor, x: torch.Tensor,
                   progress: SlotProgress, project: Project | None) -> None:
        """Advance the slots ``idx`` from their new evaluation (loss [A], grad [A, n]); x [V, n] in place."""


def optimise_slots(x: torch.Tensor, loss_and_grad: LossAndGrad, progress: SlotProgress, optimiser: SlotOptimiser,
                   project: Project | None, stopped: Callable[[list[int]], None] = lambda slots: None) -> int:
    """Run every slot to its own stop; x [V, n] is updated in place. Returns the ticks run
    (a tick: one batched evaluation of every slot still running).

    After each tick, ``stopped(slots)`` gets the slots that stopped in it: it
    reads their result (``progress.best``, ``progress.trace(slot)``, ``progress.evals``)
    and may start new victims in them (``progress.reset``, ``optimiser.reset``, x rows),
    which then run from the next tick. Returns when every slot is done.
    ``project`` is the after-update projection (clamp 'step', Algorithm 2), or None.
    """
    ticks = 0
    while not bool(progress.done.all()):
        ticks += 1
        start = time.perf_counter()
        idx = torch.nonzero(~progress.done).flatten()
        loss, grad = loss_and_grad(idx, x[idx])
        progress.evals[idx] += 1
        optimiser.after_eval(idx, loss, grad, x, progress, project)
        progress.spent[idx.cpu()] += (time.perf_counter() - start) / len(idx)
        ended = idx[progress.done[idx]]
        if len(ended):
            stopped(ended.tolist())
    return ticks
