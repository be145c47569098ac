"""The optimisation loop and guarded runner every attack shares.

``optimise`` drives any set of free tensors (a dummy batch, label logits, a
generator's weights) down a matching objective and decides the status:
'converged' (loss below tolerance), 'budget' (iterations or wall-clock spent,
or the loss stopped changing), 'diverged' (non-finite loss). ``run_attack``
adds restarts (keeping the lowest loss), turns any exception into a 'failed'
Reconstruction and attaches the diagnostics: attacks never raise.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from attacks.core import TIME_GUARD, AttackConfig, ObservedUpdate, Reconstruction
from attacks.gradient.matching import GradientMatcher
from attacks.gradient.thresholding import binarise


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


def make_optimizer(config: AttackConfig) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    """L-BFGS as in DLG (lr 1, ``max_eval`` evaluations per step, no line search) or Adam."""
    if config.optimizer == "lbfgs":
        return lambda v: torch.optim.LBFGS(v, lr=config.lr, max_iter=config.max_eval, max_eval=config.max_eval)
    return lambda v: torch.optim.Adam(v, lr=config.lr)


def optimise(
    variables: list[torch.Tensor],
    objective: Callable[[], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    iterations: int,
    tolerance: float,
    deadline: float,
    stall_patience: int = 0,
    after_update: Callable[[], None] = lambda: None,
    keep_initial: bool = True,
) -> Trace:
    """Minimise ``objective()`` over ``variables`` in place; never raises on bad values.

    Each ``optimizer.step`` first evaluates the objective at the current state,
    so the loss a step returns belongs to the state before it; that state is
    snapshotted and the best one is restored on return. ``after_update`` runs
    after every step (projection to [0, 1], Algorithm 2's binarisation);
    ``keep_initial=False`` keeps the untouched initial state out of the running
    for best (Algorithm 2 must return a binarised, i.e. updated, state).
    """
    trace = Trace(reason=f"{iterations} iterations spent")
    best_state = [v.detach().clone() for v in variables]
    unchanged, previous = 0, math.nan

    def closure() -> torch.Tensor:
        trace.evaluations += 1
        loss = objective()
        grads = torch.autograd.grad(loss, variables, allow_unused=True)
        for v, g in zip(variables, grads):
            v.grad = torch.zeros_like(v) if g is None else g.detach()
        return loss.detach()

    def remember(loss: float, state: list[torch.Tensor]) -> None:
        nonlocal best_state
        if loss < trace.best_loss:
            trace.best_loss, best_state = loss, state

    for step in range(iterations + 1):  # the extra round only scores the last update
        state = [v.detach().clone() for v in variables]
        if step == iterations:
            loss = float(closure())
        else:
            loss = float(optimizer.step(closure))
        if not math.isfinite(loss):
            trace.status, trace.reason = "diverged", f"non-finite matching loss ({loss}) at step {step}"
            break
        trace.losses.append(loss)
        if step > 0 or keep_initial:
            remember(loss, state)
        if loss < tolerance:
            trace.status, trace.reason = "converged", f"matching loss {loss:.3g} < {tolerance:g} at step {step}"
            break
        if step == iterations:
            break
        trace.iterations += 1
        unchanged = unchanged + 1 if loss == previous else 0
        previous = loss
        if stall_patience and unchanged >= stall_patience:
            trace.reason = f"stalled: loss unchanged for {unchanged} steps at {loss:.4g}"
            break
        if time.perf_counter() > deadline:
            trace.reason = f"{TIME_GUARD} after {trace.iterations} steps (wall-clock safety limit)"
            break
        after_update()
    with torch.no_grad():
        for v, saved in zip(variables, best_state):
            v.copy_(saved)
    return trace


AttemptFn = Callable[[GradientMatcher, int, float], Attempt]


def dummy_attempt(
    matcher: GradientMatcher, config: AttackConfig, seed: int, deadline: float, labels: torch.Tensor | None
) -> Attempt:
    """Optimise a dummy batch directly (DLG, iDLG).

    labels: long [B] when known or inferred (iDLG); ``None`` makes the label a
    free soft label, softmax of logits [B, K] drawn N(0, 1) and optimised jointly (DLG).
    """
    generator = torch.Generator().manual_seed(seed)
    dummy = matcher.layout.initial(generator).to(matcher.device).requires_grad_(True)
    initial = dummy.detach().clone()
    variables = [dummy]
    if labels is None:
        logits = torch.randn(matcher.layout.batch, matcher.num_classes, generator=generator)
        logits = logits.to(matcher.device).requires_grad_(True)
        variables.append(logits)
        label_probs: Callable[[], torch.Tensor] = lambda: logits.softmax(-1)
    else:
        fixed = matcher.one_hot(labels)
        label_probs = lambda: fixed
    trace = optimise(
        variables, lambda: matcher.loss(dummy, label_probs()), make_optimizer(config)(variables),
        config.iterations, config.tolerance, deadline, config.stall_patience,
        after_update=lambda: matcher.layout.project_(dummy, config), keep_initial=config.thresholding != "in",
    )
    probs = label_probs().detach()
    chosen = probs.argmax(-1) if labels is None else labels
    return Attempt(dummy.detach(), probs, chosen, trace, initial)


def run_attack(observed: ObservedUpdate, config: AttackConfig, attempt: AttemptFn, name: str) -> Reconstruction:
    """Run ``attempt(matcher, seed, deadline)`` for every restart and keep the best.

    Returns a Reconstruction in the data's layout, thresholded by Algorithm 1
    when ``config.thresholding == 'post'``. Any exception becomes status
    'failed' with the exception as reason; nothing propagates to the caller.
    """
    start = time.perf_counter()
    deadline = start + config.time_budget_s if config.time_budget_s else math.inf
    try:
        matcher = GradientMatcher(observed, config)
        best: Attempt | None = None
        iterations = evaluations = 0
        for restart in range(config.restarts):
            current = attempt(matcher, config.seed + restart, deadline)
            iterations += current.trace.iterations
            evaluations += current.trace.evaluations
            if best is None or current.trace.best_loss < best.trace.best_loss or (
                best.trace.status == "diverged" and current.trace.status != "diverged"
            ):
                best = current
            if current.trace.status == "converged" or time.perf_counter() > deadline:
                break
        if best is None:
            raise RuntimeError("no restart ran")
        return finish(matcher, best, config, name, restart + 1, iterations, evaluations, time.perf_counter() - start)
    except Exception as exc:  # an attack reports failure, it never raises
        reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        return Reconstruction.failed(reason, wall_time_s=time.perf_counter() - start)


def finish(matcher: GradientMatcher, best: Attempt, config: AttackConfig, attack: str, restarts: int,
           iterations: int, evaluations: int, wall: float) -> Reconstruction:
    """The end of every dummy attack, one-at-a-time or batched: clamp, data layout,
    Algorithm 1 (post-optimisation thresholding), diagnostics."""
    final = best.dummy.detach().clone()
    if config.clamp != "none":
        matcher.layout.clamp_(final)
    samples = matcher.layout.to_data(final).cpu()
    if config.thresholding == "post":
        samples = binarise(samples, config.tau)
    facts = matcher.diagnostics(final, best.probs)
    facts.update(attack=attack, restarts_run=restarts)
    initial = None if best.initial is None else matcher.layout.to_data(best.initial.detach()).cpu()
    return Reconstruction(
        samples=samples, labels=best.labels.detach().cpu().long(), status=best.trace.status, initial=initial,
        reason=best.trace.reason, loss_history=best.trace.losses, final_loss=best.trace.best_loss,
        iterations=iterations, evaluations=evaluations, wall_time_s=wall, diagnostics=facts,
    )
