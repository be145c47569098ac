"""Invert many victims in one optimisation: the fast path of DLG and iDLG.

``reconstruct_many(observed, config, attack)`` returns, victim for victim, what
``attacks.get_attack(attack)(observed[i], config)`` returns (same statuses,
reasons, diagnostics keys; same iterates up to floating-point noise), but runs
the victims together: their weights and observed gradients are stacked on a
victim axis (``StackedMatcher``), the models run as grouped convolutions
(``attacks.functional``), and each victim keeps its own optimiser state and
stop (``attacks.batched_optim``). Victims are exactly independent: a victim's
loss depends only on its own dummy, weights and observed gradient.

Differences from one-at-a-time, by design: ``evaluations`` leaves out the
inner evaluations one-at-a-time L-BFGS wastes in the step at which it stops;
``time_budget_s`` is measured on the batch's clock (victims progress together);
``wall_time_s`` is the victim's share of its batch (batch time / victims).
GRNN and fedavg 'replay' have no batched form here: they run one at a time
(spread over processes by ``attacks.parallel`` when ``workers > 1``). Victims
may carry their own seeds (``seeds``): victim i's restart r then draws its
dummy with seed ``seeds[i] + r``, as ``replace(config, seed=seeds[i])`` alone.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import replace

import torch

from attacks.batched_optim import BatchedLBFGS, Book, Elementwise, drive
from attacks.config import AttackConfig
from attacks.functional import per_victim_soft_ce, stacked_logits
from attacks.idlg import infer_labels, mean_prediction
from attacks.matching import GradientMatcher, layout_for
from attacks.observation import ObservedUpdate
from attacks.optimise import Attempt, finish
from attacks.result import Reconstruction
from fedsnn.errors import ConfigError

MAX_VICTIMS = 64  # per optimisation; larger groups are split
BATCHED_ATTACKS = ("dlg", "idlg")  # the attacks with a batched form


class StackedMatcher:
    """``GradientMatcher.loss`` for V victims of one architecture and dummy layout.

    params / target: name -> [V, ...] (victim v's global weights / observed gradient).
    """

    def __init__(self, matchers: Sequence[GradientMatcher]) -> None:
        first = matchers[0]
        self.matchers, self.spec, self.layout = list(matchers), first.observed.spec, first.layout
        self.kind = "image" if first.layout.kind == "image" else "steps"
        self.params = {n: torch.stack([m.params[n].detach() for m in matchers]) for n in first.params}
        self.target = {n: torch.stack([m.target[n] for m in matchers]) for n in first.target}
        self._index: torch.Tensor | None = None

    def _select(self, victims: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        if self._index is None or not torch.equal(self._index, victims):
            self._index = victims.clone()
            self._params = {n: p[victims].requires_grad_(True) for n, p in self.params.items()}
            self._target = {n: t[victims] for n, t in self.target.items()}
        return self._params, self._target

    def loss(self, victims: torch.Tensor, x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """L_G per victim [A]; x: [A, *layout.shape] dummies, probs: [A, B, K]."""
        params, target = self._select(victims)
        with torch.enable_grad():
            ce = per_victim_soft_ce(stacked_logits(params, x, self.spec, self.kind), probs)
            grads = dict(zip(params, torch.autograd.grad(ce.sum(), list(params.values()), create_graph=True)))
            return sum(((grads[n] - target[n]) ** 2).flatten(1).sum(1) for n in target)  # type: ignore[return-value]


def labels_for(attack: str, matcher: GradientMatcher, seed: int) -> torch.Tensor | None:
    """Known labels, iDLG's inferred labels, or None (DLG's free soft label)."""
    if matcher.observed.labels is not None:
        return torch.tensor(matcher.observed.labels, dtype=torch.long)
    if attack == "dlg":
        return None
    probs = mean_prediction(matcher, seed) if matcher.layout.batch > 1 else None
    return infer_labels(matcher.target, matcher.last_linear_name(), matcher.layout.batch, probs)


def attempt_many(stacked: StackedMatcher, victims: list[int], config: AttackConfig, attack: str, seeds: list[int],
                 deadline: float) -> list[Attempt]:
    """One restart for the listed victims (victim ``victims[p]`` seeded ``seeds[p]``):
    ``optimise.dummy_attempt`` batched."""
    layout, device = stacked.layout, torch.device(config.device)
    matchers = [stacked.matchers[v] for v in victims]
    labels = [labels_for(attack, m, seed) for m, seed in zip(matchers, seeds)]
    free = labels[0] is None
    starts, fixed = [], []
    for m, known, seed in zip(matchers, labels, seeds):
        generator = torch.Generator().manual_seed(seed)
        parts = [layout.initial(generator).flatten()]
        if known is None:
            parts.append(torch.randn(layout.batch, m.num_classes, generator=generator).flatten())
        else:
            fixed.append(m.one_hot(known))
        starts.append(torch.cat(parts))
    x0 = torch.stack(starts).to(device)  # [P, n]: dummy, then label logits (DLG)
    onehot = None if free else torch.stack(fixed)
    index = torch.tensor(victims, device=device)
    size, k = math.prod(layout.shape), stacked.matchers[0].num_classes

    def split(x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = x[:, size:].view(len(x), layout.batch, k).softmax(-1) if free else onehot[idx]
        return x[:, :size].view(len(x), *layout.shape), probs

    def evaluate(idx: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            loss = stacked.loss(index[idx], *split(x, idx))
            (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad

    def project(idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        layout.project_(x[:, :size], config)  # elementwise, so one call serves every victim
        return x

    projecting = config.clamp == "step" or config.thresholding == "in"
    book = Book(x0, config.iterations, config.tolerance, deadline, config.stall_patience,
                keep_initial=config.thresholding != "in")
    optimiser = (BatchedLBFGS(x0, config.lr, config.max_eval) if config.optimizer == "lbfgs"
                 else Elementwise("adam", x0, config.lr))
    best, evals = drive(x0.clone(), evaluate, book, optimiser, project if projecting else None)
    dummies, probs = split(best, torch.arange(len(victims), device=device))
    out = []
    for p, (trace, known) in enumerate(zip(book.traces, labels)):
        trace.evaluations = evals[p]
        chosen = probs[p].argmax(-1) if known is None else known
        out.append(Attempt(dummies[p].detach(), probs[p].detach(), chosen, trace))
    return out


def run_group(observed: Sequence[ObservedUpdate], config: AttackConfig, attack: str,
              seeds: Sequence[int]) -> list[Reconstruction]:
    """All restarts of one batch of same-shaped victims (victim i seeded ``seeds[i]``);
    failures come back as 'failed'."""
    start = time.perf_counter()
    deadline = start + config.time_budget_s if config.time_budget_s else math.inf
    try:
        matchers = [GradientMatcher(o, config) for o in observed]
        stacked = StackedMatcher(matchers)
        best: list[Attempt | None] = [None] * len(observed)
        totals = [[0, 0, 0] for _ in observed]  # iterations, evaluations, restarts run
        pending = list(range(len(observed)))
        for restart in range(config.restarts):
            attempts = attempt_many(stacked, pending, config, attack, [seeds[v] + restart for v in pending],
                                    deadline)
            for v, current in zip(pending, attempts):
                totals[v][0] += current.trace.iterations
                totals[v][1] += current.trace.evaluations
                totals[v][2] = restart + 1
                held = best[v]
                if held is None or current.trace.best_loss < held.trace.best_loss or (
                    held.trace.status == "diverged" and current.trace.status != "diverged"
                ):
                    best[v] = current
            pending = [v for v, a in zip(pending, attempts) if a.trace.status != "converged"]
            if not pending or time.perf_counter() > deadline:
                break
        share = (time.perf_counter() - start) / len(observed)
        return [finish(m, b, config, attack, r, i, e, share)  # type: ignore[arg-type]
                for m, b, (i, e, r) in zip(matchers, best, totals)]
    except Exception as exc:  # an attack reports failure, it never raises
        reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        share = (time.perf_counter() - start) / max(len(observed), 1)
        return [Reconstruction.failed(reason, wall_time_s=share) for _ in observed]


def group_key(observed: ObservedUpdate, config: AttackConfig, attack: str) -> tuple | None:
    """Victims sharing a key run in one optimisation; None: no batched form (run alone).

    Only the stock DLG/iDLG batch: an entry replaced in ``attacks.ATTACKS`` (a
    test's spy, another implementation) is honoured and runs one at a time.
    """
    from attacks import ATTACKS, dlg, idlg

    stock = {"dlg": dlg.reconstruct, "idlg": idlg.reconstruct}
    if attack not in BATCHED_ATTACKS or ATTACKS.get(attack) is not stock[attack] \
            or observed.spec.name not in ("lenet", "snn-lenet"):
        return None
    if observed.mode == "fedavg" and config.fedavg_handling == "replay":
        return None
    try:
        layout = layout_for(observed, config)
    except Exception:  # noqa: BLE001 - the one-at-a-time path reports it as 'failed'
        return None
    free = attack == "dlg" and observed.labels is None
    return observed.spec, layout, free


def reconstruct_many(observed: Sequence[ObservedUpdate], config: AttackConfig, attack: str,
                     workers: int = 1, max_victims: int = MAX_VICTIMS,
                     seeds: Sequence[int] | None = None) -> list[Reconstruction]:
    """Run ``attack`` on every update; results in the order of ``observed``.

    Parameters
    ----------
    observed : sequence of ObservedUpdate
        Independent victims (samples, clients, rounds); any mix of shapes.
    config : AttackConfig
        Shared settings; victim i's restart r uses seed ``config.seed + r`` as alone.
    attack : 'dlg' | 'idlg' | 'grnn'
    workers : int
        Worker processes (one torch thread each) sharing the batches; 1 runs here.
    max_victims : int
        Victims per optimisation (memory grows with it: L-BFGS keeps [V, 100, n] pairs).
    seeds : sequence of int, optional
        Victim i's seed (default ``config.seed`` for all).
    """
    from attacks import ATTACKS
    from attacks.parallel import run_jobs

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
        size = min(max_victims, -(-len(members) // max(1, workers)))  # spread a group over the workers
        jobs += [members[s:s + size] for s in range(0, len(members), size)]
    outputs = run_jobs([([observed[i] for i in job], config, attack, [seeds[i] for i in job]) for job in jobs],
                       workers)
    results: list[Reconstruction | None] = [None] * len(observed)
    for job, out in zip(jobs, outputs):
        for i, r in zip(job, out):
            results[i] = r
    return results  # type: ignore[return-value]


def run_job(observed: Sequence[ObservedUpdate], config: AttackConfig, attack: str,
            seeds: Sequence[int]) -> list[Reconstruction]:
    """One job of ``reconstruct_many``: a batch of same-shaped victims, or one victim alone."""
    from attacks import get_attack

    if len(observed) == 1 and group_key(observed[0], config, attack) is None:
        return [get_attack(attack)(observed[0], replace(config, seed=seeds[0]))]
    return run_group(observed, config, attack, seeds)
