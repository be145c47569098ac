"""The one-at-a-time optimisation loop and guarded runner every attack shares.

``optimise`` drives any set of free tensors (a dummy batch, label logits, a
generator's weights) down a matching objective; ``StopRule``
(``attacks.gradient.stopping``) decides when it stops and with which status.
``run_attack`` adds restarts (``restart_due``, ``keep_better``), turns any
exception into a 'failed' Reconstruction and attaches the diagnostics: attacks
never raise. The pieces of a dummy attack that the batched engine
(``attacks.batched``) runs too are defined here once: the starting state
(``initial_state``), the labels (``choose_labels``, ``reported_labels``) and
the ending (``to_reconstruction``).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

import torch

from attacks.core import AttackConfig, ObservedUpdate, Reconstruction
from attacks.gradient.matching import GradientMatcher
from attacks.gradient.stopping import (Attempt, StopRule, Trace, dummy_stop_settings, keep_better, restart_due,
                                      time_budget)
from attacks.gradient.thresholding import binarise


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
    rule = StopRule(iterations, tolerance, stall_patience, keep_initial)
    trace = rule.trace
    best_state = [v.detach().clone() for v in variables]

    def closure() -> torch.Tensor:
        trace.evaluations += 1
        loss = objective()
        grads = torch.autograd.grad(loss, variables, allow_unused=True)
        for v, g in zip(variables, grads):
            v.grad = torch.zeros_like(v) if g is None else g.detach()
        return loss.detach()

    for step in range(iterations + 1):  # the extra round only scores the last update
        state = [v.detach().clone() for v in variables]
        loss = float(closure()) if step == iterations else float(optimizer.step(closure))
        improved, stop = rule.observe(loss, time.perf_counter() > deadline)
        if improved:
            best_state = state
        if stop:
            break
        after_update()
    with torch.no_grad():
        for v, saved in zip(variables, best_state):
            v.copy_(saved)
    return trace


AttemptFn = Callable[[GradientMatcher, int, float], Attempt]
LabelInference = Callable[[GradientMatcher, int], torch.Tensor]  # (matcher, seed) -> inferred labels long [B]


def declared_labels(observed: ObservedUpdate) -> torch.Tensor | None:
    """The labels the client declared (long [B]), or None when it did not."""
    return None if observed.labels is None else torch.tensor(observed.labels, dtype=torch.long)


def choose_labels(matcher: GradientMatcher, seed: int, infer: LabelInference | None) -> torch.Tensor | None:
    """A dummy attack's labels, long [B]: the declared ones, else ``infer(matcher, seed)``
    (iDLG); None when the attack has no inference (DLG): it learns a free soft label."""
    known = declared_labels(matcher.observed)
    if known is not None or infer is None:
        return known
    return infer(matcher, seed)


def learns_labels(observed: ObservedUpdate, infer: LabelInference | None) -> bool:
    """Whether ``choose_labels`` gives None for this victim, without building its matcher."""
    return observed.labels is None and infer is None


def reported_labels(probs: torch.Tensor, known: torch.Tensor | None) -> torch.Tensor:
    """The labels an attempt reports: the known ones, else the argmax of its soft label probs [B, K]."""
    return probs.argmax(-1) if known is None else known


def initial_state(matcher: GradientMatcher, seed: int, free_labels: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The state a dummy attack starts from, on the matcher's device.

    Returns the dummy [*layout.shape] (``DummyLayout.initial``) and, when the
    label is free (DLG without declared labels), label logits [B, K] drawn
    N(0, 1) after it from the same generator seeded ``seed``; else None.
    """
    generator = torch.Generator().manual_seed(seed)
    dummy = matcher.layout.initial(generator).to(matcher.device)
    if not free_labels:
        return dummy, None
    logits = torch.randn(matcher.layout.batch, matcher.num_classes, generator=generator)
    return dummy, logits.to(matcher.device)


def dummy_attempt(
    matcher: GradientMatcher, config: AttackConfig, seed: int, deadline: float, labels: torch.Tensor | None
) -> Attempt:
    """Optimise a dummy batch directly (DLG, iDLG).

    labels: long [B] when known or inferred (iDLG); ``None`` makes the label a
    free soft label, softmax of logits [B, K] drawn N(0, 1) and optimised jointly (DLG).
    """
    start, start_logits = initial_state(matcher, seed, free_labels=labels is None)
    dummy = start.clone().requires_grad_(True)
    variables = [dummy]
    if start_logits is None:
        fixed = matcher.one_hot(labels)
        label_probs: Callable[[], torch.Tensor] = lambda: fixed
    else:
        logits = start_logits.requires_grad_(True)
        variables.append(logits)
        label_probs = lambda: logits.softmax(-1)
    trace = optimise(
        variables, lambda: matcher.loss(dummy, label_probs()), make_optimizer(config)(variables),
        deadline=deadline, after_update=lambda: matcher.layout.project_(dummy, config), **dummy_stop_settings(config),
    )
    probs = label_probs().detach()
    return Attempt(dummy.detach(), probs, reported_labels(probs, labels), trace, start)


def dummy_attack_attempt(config: AttackConfig, infer: LabelInference | None) -> AttemptFn:
    """The attempt of a dummy attack (DLG: ``infer=None``; iDLG: its label inference)."""
    return lambda matcher, seed, deadline: dummy_attempt(matcher, config, seed, deadline,
                                                         choose_labels(matcher, seed, infer))


def run_attack(observed: ObservedUpdate, config: AttackConfig, attempt: AttemptFn, name: str) -> Reconstruction:
    """Run ``attempt(matcher, seed, deadline)`` for every restart and keep the best.

    Returns a Reconstruction in the data's layout, thresholded by Algorithm 1
    when ``config.thresholding == 'post'``. Any exception becomes status
    'failed' with the exception as reason; nothing propagates to the caller.
    """
    start = time.perf_counter()
    deadline = start + time_budget(config)
    try:
        matcher = GradientMatcher(observed, config)
        best: Attempt | None = None
        iterations = evaluations = restarts = 0
        while True:
            current = attempt(matcher, config.seed + restarts, deadline)
            restarts += 1
            iterations += current.trace.iterations
            evaluations += current.trace.evaluations
            best = keep_better(best, current)
            if not restart_due(current.trace, restarts, config.restarts, time.perf_counter() > deadline):
                break
        return to_reconstruction(matcher, best, config, name, restarts, iterations, evaluations,
                                 time.perf_counter() - start)
    except Exception as exc:  # an attack reports failure, it never raises
        reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        return Reconstruction.failed(reason, wall_time_s=time.perf_counter() - start)


def to_reconstruction(matcher: GradientMatcher, best: Attempt, config: AttackConfig, attack: str, restarts: int,
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
