"""Invert many victims in one optimisation: the fast path of DLG and iDLG.

``reconstruct_many(observed, config, attack)`` returns, victim for victim, what
``attacks.get_attack(attack)(observed[i], config)`` returns (same statuses,
reasons, diagnostics keys plus ``queue``: the ticks, victims and slots of the
queue that ran it; same iterates up to floating-point noise), but runs
the victims together: their weights and observed gradients are stacked on a
slot axis (``attacks.batched.matcher.StackedMatcher``), the models run as
grouped convolutions (``fedsnn.task.models.stacked``), and each slot keeps its
own optimiser state (``adam``, ``lbfgs``) and stop (``slots``). Victims are
exactly independent: a victim's loss depends only on its own dummy, weights
and observed gradient.

Nothing a victim's run decides is written here twice: its labels
(``choose_labels`` with the attack's own ``INFER_LABELS``), its starting state
(``initial_state``), its stop rule (``StopRule`` with ``dummy_stop_settings``),
the restart kept and whether another is due (``keep_better``,
``restart_due``) and its ending (``to_reconstruction``) are the functions the
one-at-a-time loop (``attacks.gradient.optimise``) calls.

Continuous batching (``Queue``): a group of same-shaped victims is a queue of
(victim, restart) entries served by ``max_victims`` slots. When an entry
stops, its slot is handed at once to the victim's next restart (when one is
due) or to the next waiting victim, which starts as it would alone: its own
seed and initial dummy, empty L-BFGS history (or Adam moments), its own step
counter and stop rules. So the batch stays full until the queue is empty,
instead of running its slowest victims nearly alone (the DLG tail: a few
victims take all 300 steps while most stop early). ``refill=False`` keeps the
consecutive fixed batches, for comparison.

Differences from one-at-a-time, by design: ``evaluations`` leaves out the
inner evaluations one-at-a-time L-BFGS wastes in the step at which it stops.
``wall_time_s`` is the victim's share of the batch: each tick's time split
over the slots it evaluated, summed over the ticks the victim was in a slot,
plus its own set-up and finish (shares of all victims add up to the batch's
time). ``time_budget_s`` is a per-victim budget on that same share clock, from
the victim's first entry over all its restarts; so a victim gets the budget
it would have alone, and more steps in it, as batching makes steps cheaper.
GRNN and fedavg 'replay' have no batched form here: they run one at a time
(spread over processes by ``attacks.batched.parallel`` when ``workers > 1``). Victims
may carry their own seeds (``seeds``): victim i's restart r then draws its
dummy with seed ``seeds[i] + r``, as ``replace(config, seed=seeds[i])`` alone.
A victim whose set-up or finish fails is 'failed' alone; an error inside the
shared optimisation fails every victim not yet finished.
"""

from __future__ import annotations

import math
import time
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from attacks.batched.adam import BatchedAdam
from attacks.batched.lbfgs import BatchedLBFGS
from attacks.batched.matcher import StackedMatcher
from attacks.batched.parallel import map_jobs
from attacks.batched.slots import SlotProgress, optimise_slots
from attacks.core import AttackConfig, ObservedUpdate, Reconstruction
from attacks.gradient import (Attempt, GradientMatcher, choose_labels, dummy_stop_settings, initial_state, keep_better,
                              layout_for, learns_labels, reported_labels, restart_due, time_budget, to_reconstruction)
from attacks.registry import ATTACKS, BATCHED, LABEL_INFERENCE, get_attack
from fedsnn.errors import ConfigError

MAX_VICTIMS = 64  # slots per optimisation; larger groups queue for them


@dataclass
class QueuedVictim:
    """One victim of a queue: its matcher while it runs, its best restart so far and its totals."""

    matcher: GradientMatcher | None = None
    best: Attempt | None = None
    iterations: int = 0
    evaluations: int = 0
    restarts: int = 0
    spent: float = 0.0  # seconds: its shares of the ticks plus its own set-up and finish
    result: Reconstruction | None = None


class Queue:
    """Continuous batching of same-shaped victims over ``slots`` optimisation slots.

    Entries are (victim, restart). Every slot runs one entry as ``optimise.
    dummy_attempt`` would alone (its own seed ``seeds[v] + restart``, initial
    dummy, labels, L-BFGS history or Adam moments, counters and stop rules);
    when it stops, its victim either gets its next restart (queued first, so it
    starts at once) or is finished, and the slot takes the next entry. So the
    batch stays full until the queue runs dry; only then does it shrink.
    """

    def __init__(self, observed: Sequence[ObservedUpdate], config: AttackConfig, attack: str,
                 seeds: Sequence[int], slots: int) -> None:
        self.observed, self.config, self.attack, self.seeds = observed, config, attack, seeds
        self.victims = [QueuedVictim() for _ in observed]
        self.waiting = deque((v, 0) for v in range(len(observed)))
        self.budget = time_budget(config)
        slots = max(1, min(slots, len(observed)))
        self.owner = [-1] * slots  # slot -> victim
        self.restart = [0] * slots
        # set by _build, once the first entries are in: stacked victims, progress, optimiser, states x [S, n]

    def run(self) -> list[Reconstruction]:
        """Every victim's Reconstruction, in order; a victim that fails is 'failed', alone."""
        config, ticks = self.config, 0
        try:
            first = [e for e in range(len(self.owner)) if self._admit(e)]
            self.owner, self.restart = self.owner[:len(first)], self.restart[:len(first)]
            if first:
                self._build(first)
                project = self._project if config.clamp == "step" or config.thresholding == "in" else None
                ticks = optimise_slots(self.x, self._loss_and_grad, self.progress, self.optimiser, project,
                                       self._stopped)
        except Exception as exc:  # an attack reports failure, it never raises
            reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            for v in self.victims:
                if v.result is None:
                    v.result = Reconstruction.failed(reason, wall_time_s=v.spent)
        # The queue's own cost, the same on each of its victims (benchmarks count ticks with it).
        queue = {"ticks": ticks, "victims": len(self.victims), "slots": len(self.owner)}
        return [v.result.with_samples(v.result.samples, queue=queue) for v in self.victims]  # type: ignore[union-attr]

    def _admit(self, slot: int) -> bool:
        """Take waiting entries until one can start in ``slot`` (its victim's matcher built)."""
        while self.waiting:
            v, restart = self.waiting.popleft()
            victim = self.victims[v]
            start = time.perf_counter()
            try:
                if victim.matcher is None:
                    victim.matcher = GradientMatcher(self.observed[v], self.config)
                self.owner[slot], self.restart[slot] = v, restart
                return True
            except Exception as exc:  # noqa: BLE001 - this victim fails, the others go on
                reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
                victim.result = Reconstruction.failed(reason, wall_time_s=victim.spent)
            finally:
                victim.spent += time.perf_counter() - start
        self.owner[slot] = -1
        return False

    def _start(self, slot: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The entry's initial state [n] (dummy, then DLG's label logits) and its one-hot labels."""
        v = self.owner[slot]
        matcher, seed = self.victims[v].matcher, self.seeds[v] + self.restart[slot]
        known = choose_labels(matcher, seed, LABEL_INFERENCE[self.attack])
        dummy, logits = initial_state(matcher, seed, free_labels=known is None)
        self.known[slot] = known
        x0 = torch.cat([dummy.flatten()] + ([] if logits is None else [logits.flatten()])).to(self.device)
        self.initial[slot] = x0.clone()
        return x0, None if known is None else matcher.one_hot(known)

    def _build(self, slots: list[int]) -> None:
        """Progress, optimiser and stacked victims for the first entries (``slots``: 0..k-1)."""
        config, matchers = self.config, [self.victims[self.owner[e]].matcher for e in slots]
        self.device = torch.device(config.device)
        self.known: list[torch.Tensor | None] = [None] * len(self.owner)
        self.initial: list[torch.Tensor | None] = [None] * len(self.owner)  # each slot's x0 [n]
        starts = [self._start(e) for e in slots]
        self.stacked = StackedMatcher(matchers, config.kernel)
        self.layout, self.k = self.stacked.layout, matchers[0].num_classes
        self.size, self.free = math.prod(self.layout.shape), starts[0][1] is None
        self.onehot = None if self.free else torch.stack([o for _, o in starts])
        x0 = torch.stack([x for x, _ in starts])  # [S, n]
        self.progress = SlotProgress(x0, self.budget, dummy_stop_settings(config))
        self.optimiser = (BatchedLBFGS(x0, config.lr, config.max_eval, config.kernel) if config.optimizer == "lbfgs"
                          else BatchedAdam(x0, config.lr))
        self.x = x0.clone()
        for e in slots:
            self.progress.spent[e] = self.victims[self.owner[e]].spent

    def _split(self, x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [A, n] -> dummies [A, *layout.shape] and label distributions [A, B, K]."""
        probs = x[:, self.size:].view(len(x), self.layout.batch, self.k).softmax(-1) if self.free \
            else self.onehot[idx]
        return x[:, :self.size].view(len(x), *self.layout.shape), probs

    def _loss_and_grad(self, idx: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Matching loss [A] of the slots ``idx`` at states x [A, n] and its gradient [A, n]."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            loss = self.stacked.loss(idx, *self._split(x, idx))
            (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad

    def _project(self, idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        self.layout.project_(x[:, :self.size], self.config)  # elementwise, so one call serves every slot
        return x

    def _stopped(self, slots: list[int]) -> None:
        """Harvest the entries that stopped; queue restarts; start waiting entries in the freed slots."""
        fresh = []
        for e in slots:
            self._harvest(e)
            if self._admit(e):
                fresh.append(e)
        if not fresh:
            return
        for e in fresh:
            start = time.perf_counter()
            victim = self.victims[self.owner[e]]
            self.stacked.load(e, victim.matcher)
            x0, onehot = self._start(e)
            if onehot is not None:
                self.onehot[e] = onehot
            self.x[e] = x0
            self.progress.reset(e, x0, victim.spent + time.perf_counter() - start)
        self.optimiser.reset(torch.tensor(fresh, device=self.device), torch.nonzero(~self.progress.done).flatten())

    def _harvest(self, slot: int) -> None:
        """The stopped entry of ``slot`` as an Attempt; the victim's restart queued or its result made."""
        start = time.perf_counter()
        v, progress = self.owner[slot], self.progress
        victim, trace, known = self.victims[v], progress.trace(slot), self.known[slot]
        trace.evaluations = int(progress.evals[slot])
        dummy, probs = self._split(progress.best[slot:slot + 1], torch.tensor([slot], device=self.device))
        start_dummy = self.initial[slot][:self.size].view(self.layout.shape)  # type: ignore[index]
        current = Attempt(dummy[0].detach().clone(), probs[0].detach().clone(), reported_labels(probs[0], known),
                          trace, start_dummy)
        victim.iterations += trace.iterations
        victim.evaluations += trace.evaluations
        victim.restarts = self.restart[slot] + 1
        victim.spent = float(progress.spent[slot])
        victim.best = keep_better(victim.best, current)
        if restart_due(trace, victim.restarts, self.config.restarts, victim.spent > self.budget):
            self.waiting.appendleft((v, victim.restarts))
        else:
            try:
                victim.result = to_reconstruction(victim.matcher, victim.best, self.config, self.attack,
                                                  victim.restarts, victim.iterations, victim.evaluations, 0.0)
            except Exception as exc:  # noqa: BLE001 - this victim fails, the others go on
                victim.result = Reconstruction.failed(f"{type(exc).__name__}: {exc}", wall_time_s=0.0)
            victim.matcher = victim.best = None  # only the result is kept
            victim.spent += time.perf_counter() - start
            victim.result = replace(victim.result, wall_time_s=victim.spent)
            return
        victim.spent += time.perf_counter() - start


def group_key(observed: ObservedUpdate, config: AttackConfig, attack: str) -> tuple | None:
    """Victims sharing a key run in one optimisation; None: no batched form (run alone).

    Only the attacks the registry marks ``BATCHED`` batch, on the two LeNets.
    """
    if attack not in BATCHED or observed.spec.name not in ("lenet", "snn-lenet"):
        return None
    if observed.mode == "fedavg" and config.fedavg_handling == "replay":
        return None
    try:
        layout = layout_for(observed, config)
    except Exception:  # noqa: BLE001 - the one-at-a-time path reports it as 'failed'
        return None
    return observed.spec, layout, learns_labels(observed, LABEL_INFERENCE[attack])


def reconstruct_many(observed: Sequence[ObservedUpdate], config: AttackConfig, attack: str,
                     workers: int = 1, max_victims: int = MAX_VICTIMS,
                     seeds: Sequence[int] | None = None, refill: bool = True) -> list[Reconstruction]:
    """Run ``attack`` on every update; results in the order of ``observed``.

    Parameters
    ----------
    observed : sequence of ObservedUpdate
        Independent victims (samples, clients, rounds); any mix of shapes.
    config : AttackConfig
        Shared settings; victim i's restart r uses seed ``config.seed + r`` as alone;
        ``time_budget_s`` holds per victim (its share of the batch's time).
    attack : 'dlg' | 'idlg' | 'grnn'
    workers : int
        Worker processes (one torch thread each) sharing the victims; 1 runs here.
    max_victims : int
        Slots: victims optimised together (memory grows with it: L-BFGS keeps [V, 100, n] pairs).
    seeds : sequence of int, optional
        Victim i's seed (default ``config.seed`` for all).
    refill : bool
        True: a group longer than ``max_victims`` is one queue whose next victim
        takes the slot of each victim that stops (the batch stays full). False:
        the group runs in consecutive batches of ``max_victims``, each until its
        slowest victim stops (the tail of each batch runs nearly empty).
    """
    if attack not in ATTACKS:
        raise ConfigError("attack", attack, tuple(ATTACKS))
    seeds = [config.seed] * len(observed) if seeds is None else list(seeds)
    if len(seeds) != len(observed):
        raise ConfigError("seeds", f"{len(seeds)} seeds", f"one per victim ({len(observed)})")
    groups: dict[tuple, list[int]] = {}
    singles: list[int] = []
    for i, o in enumerate(observed):
        key = group_key(o, config, attack)
        (singles.append(i) if key is None else groups.setdefault(key, []).append(i))
    jobs = [[i] for i in singles]
    for members in groups.values():
        size = -(-len(members) // max(1, workers))  # spread a group over the workers
        size = size if refill else min(max_victims, size)
        jobs += [members[s:s + size] for s in range(0, len(members), size)]
    outputs = map_jobs(reconstruct_job, [([observed[i] for i in job], config, attack, [seeds[i] for i in job],
                                           max_victims) for job in jobs], workers)  # type: ignore[misc]
    results: list[Reconstruction | None] = [None] * len(observed)
    for job, out in zip(jobs, outputs):
        for i, r in zip(job, out):
            results[i] = r
    return results  # type: ignore[return-value]


def reconstruct_job(observed: Sequence[ObservedUpdate], config: AttackConfig, attack: str,
                    seeds: Sequence[int], slots: int = MAX_VICTIMS) -> list[Reconstruction]:
    """One job of ``reconstruct_many``: same-shaped victims (victim i seeded ``seeds[i]``) queued
    through ``slots`` slots, or one victim with no batched form alone; failures come back as 'failed'."""
    if len(observed) == 1 and group_key(observed[0], config, attack) is None:
        return [get_attack(attack)(observed[0], replace(config, seed=seeds[0]))]
    return Queue(observed, config, attack, seeds, slots).run()
