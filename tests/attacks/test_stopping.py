"""The stop rule and restart choice are one code path: the one-at-a-time loop
(``optimise``) and the batched engine's slots (``SlotProgress``) take the same
decisions, with the same reasons, on the same loss sequences."""

from __future__ import annotations

import math

import pytest
import torch

from attacks.batched.slots import SlotProgress
from attacks.gradient import Attempt, Trace, keep_better, optimise, restart_due

NAN = math.nan
SCRIPTS = {  # losses at the start of steps 0, 1, ...; iterations = 4
    "converged": [5.0, 3.0, 1e-9, 1.0],
    "diverged": [5.0, 4.0, NAN],
    "stalled": [5.0, 2.0, 2.0, 2.0, 2.0],
    "iterations": [5.0, 4.0, 3.0, 2.0, 1.0],
    "best-at-start": [1.0, 3.0, 2.0, 2.5, 4.0],
}


def alone(losses: list[float], keep_initial: bool, out_of_time: bool) -> tuple[Trace, float]:
    """``optimise`` on a variable whose objective replays ``losses``; returns its trace
    and the marker of the state it kept (the state is the step index)."""
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    values = iter(losses)

    def objective() -> torch.Tensor:
        return x.sum() * 0 + next(values)

    class Counter(torch.optim.Optimizer):  # moves x to the next step index, evaluating once
        def __init__(self) -> None:
            super().__init__([x], {})

        def step(self, closure):  # type: ignore[override]
            loss = closure()
            with torch.no_grad():
                x.add_(1.0)
            return loss

    trace = optimise([x], objective, Counter(), 4, 1e-6, -math.inf if out_of_time else math.inf,
                     stall_patience=2, keep_initial=keep_initial)
    return trace, float(x.detach())


def batched(scripts: list[list[float]], keep_initial: bool, out_of_time: bool) -> tuple[list[Trace], list[float]]:
    """The same scripts, one per slot, through ``SlotProgress.step_start`` tick by tick."""
    x = torch.zeros(len(scripts), 1)
    settings = {"iterations": 4, "tolerance": 1e-6, "stall_patience": 2, "keep_initial": keep_initial}
    progress = SlotProgress(x, -1.0 if out_of_time else math.inf, settings)
    tick = 0
    while not bool(progress.done.all()):
        idx = torch.nonzero(~progress.done).flatten()
        losses = torch.tensor([scripts[v][tick] for v in idx.tolist()], dtype=torch.float64)
        stop = progress.step_start(idx, losses, x[idx])
        x[idx[~stop]] += 1.0
        tick += 1
    return [progress.trace(v) for v in range(len(scripts))], progress.best[:, 0].tolist()


@pytest.mark.parametrize("keep_initial", [True, False])
@pytest.mark.parametrize("out_of_time", [False, True])
def test_both_loops_take_the_same_decisions(keep_initial: bool, out_of_time: bool) -> None:
    scripts = list(SCRIPTS.values())
    traces, kept = batched(scripts, keep_initial, out_of_time)
    for name, script, trace, state in zip(SCRIPTS, scripts, traces, kept):
        expected, expected_state = alone(script, keep_initial, out_of_time)
        expected.evaluations = 0  # counted by the optimiser's closure alone; the engine counts per tick
        assert (trace.status, trace.reason, trace.iterations) == (expected.status, expected.reason,
                                                                  expected.iterations), name
        assert trace.losses == pytest.approx(expected.losses, nan_ok=True) and trace.best_loss == expected.best_loss
        assert state == expected_state, name


def test_the_decisions_themselves() -> None:
    traces, _ = batched(list(SCRIPTS.values()), keep_initial=True, out_of_time=False)
    found = {name: (t.status, t.reason) for name, t in zip(SCRIPTS, traces)}
    assert found["converged"] == ("converged", "matching loss 1e-09 < 1e-06 at step 2")
    assert found["diverged"] == ("diverged", "non-finite matching loss (nan) at step 2")
    assert found["stalled"] == ("budget", "stalled: loss unchanged for 2 steps at 2")
    assert found["iterations"] == ("budget", "4 iterations spent")
    timed, _ = batched([SCRIPTS["iterations"]], keep_initial=True, out_of_time=True)
    assert timed[0].reason == "time guard fired after 1 steps (wall-clock safety limit)" and timed[0].iterations == 1
    _, kept = batched([SCRIPTS["best-at-start"]], keep_initial=False, out_of_time=False)
    assert kept == [2.0]  # Algorithm 2: the untouched start may not be returned


def attempt(best_loss: float, status: str = "budget") -> Attempt:
    return Attempt(torch.zeros(1), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long),
                   Trace(status=status, best_loss=best_loss))


def test_keep_better_and_restart_due() -> None:
    low, high, diverged = attempt(0.1), attempt(0.5), attempt(-1.0, "diverged")
    assert keep_better(None, high) is high and keep_better(high, low) is low and keep_better(low, high) is low
    assert keep_better(diverged, high) is high  # any finite run beats a diverged one
    assert keep_better(high, attempt(0.5)) is high  # ties keep the earlier restart
    assert restart_due(high.trace, 1, 3, out_of_time=False)
    assert not restart_due(attempt(0.0, "converged").trace, 1, 3, out_of_time=False)
    assert not restart_due(high.trace, 3, 3, out_of_time=False)
    assert not restart_due(high.trace, 1, 3, out_of_time=True)
