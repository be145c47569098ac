"""Inverting Gradients (Geiping, Bauermeister, Droege, Moeller, 2020), many victims at once.

Objective per victim (REFERENCE.md section 8)::

    L(x) = 1 - <g(x), g_obs> / (|g(x)| |g_obs|) + tv_weight * TV(x)

with the cosine taken over all layers at once and TV the mean absolute
difference of neighbouring pixels. Adam (lr 0.1 unless ``optimizer='adam'``
sets another) on the *sign* of the gradient, lr decayed x0.1 at 3/8, 5/8 and
7/8 of ``iterations``, the dummy boxed to [0, 1] after every step, restarts
keeping the lowest loss per victim. Labels: given, or iDLG's rule.

Victims of one architecture and dummy layout run together on the stacked
functional form (``fedsnn.task.models.stacked_logits``): the gradient of the
sum of per-victim losses is the stack of per-victim gradients, and Adam is
elementwise, so each victim's trajectory is the one it would have alone.
``relax_spikes`` (SNN, static images) swaps in the attacker's relaxed forward
(``matching.relaxed_snn_logits``) for the first 3/4 of the run, temperature
annealed geometrically from ``relax_temperature`` to 1/100 of it; the last
quarter, and the choice of the best state, use the exact model. Fedavg
updates are read as their averaged gradient.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Sequence

import torch

from attacks.core import AttackConfig, ObservedUpdate, Reconstruction
from attacks.gradient.idlg import infer_labels, mean_prediction
from attacks.gradient.matching import GradientMatcher, relaxed_snn_logits
from attacks.gradient.sensitivity import spike_flips
from attacks.gradient.thresholding import binarise
from fedsnn.task.models import is_spiking, soft_cross_entropy, stacked_logits

IG_LR = 0.1
MAX_GROUP = 64
DECAYS = (3 / 8, 5 / 8, 7 / 8)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean |horizontal| + mean |vertical| neighbour difference per victim: x [V, ..., H, W] -> [V]."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


def temperature_at(step: int, iterations: int, config: AttackConfig) -> float | None:
    """The relaxation's temperature at ``step``; None = the exact model."""
    relaxed_steps = int(0.75 * iterations) if config.relax_spikes else 0
    if step >= relaxed_steps:
        return None
    return config.relax_temperature * 0.01 ** (step / max(1, relaxed_steps - 1))


class Group:
    """V victims of one architecture and layout: stacked weights, observed gradients, labels."""

    def __init__(self, matchers: Sequence[GradientMatcher], labels: Sequence[torch.Tensor]) -> None:
        first = matchers[0]
        self.matchers, self.spec, self.layout = list(matchers), first.observed.spec, first.layout
        self.kind = "image" if first.layout.kind == "image" else "steps"
        self.params = {n: torch.stack([m.params[n].detach() for m in matchers]).requires_grad_(True)
                       for n in first.params}
        self.target = {n: torch.stack([m.target[n] for m in matchers]) for n in first.target}
        self.target_norm = torch.sqrt(sum((t ** 2).flatten(1).sum(1) for t in self.target.values()))
        self.labels = torch.stack([lab.to(first.device) for lab in labels])  # [V, B]
        self.probs = torch.nn.functional.one_hot(self.labels, first.num_classes).float()  # [V, B, K]

    def loss(self, x: torch.Tensor, temperature: float | None, tv_weight: float) -> torch.Tensor:
        """IG loss per victim [V]; x [V, *layout.shape]."""
        if temperature is None:
            logits = stacked_logits(self.params, x, self.spec, self.kind)
        else:
            logits = relaxed_snn_logits(self.params, x, self.spec, temperature)
        ce = soft_cross_entropy(logits, self.probs)
        grads = torch.autograd.grad(ce.sum(), list(self.params.values()), create_graph=True)
        dot = sum((g * self.target[n]).flatten(1).sum(1) for n, g in zip(self.params, grads))
        norm = torch.sqrt(sum((g ** 2).flatten(1).sum(1) for g in grads)).clamp_min(1e-12)
        return 1 - dot / (norm * self.target_norm.clamp_min(1e-12)) + tv_weight * total_variation(x)


def run_restart(group: Group, config: AttackConfig, seed: int, deadline: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """One restart for every victim: (best dummies [V, ...], best losses [V], initial dummies, steps taken)."""
    device = group.labels.device  # every victim starts where it would alone: its own generator seeded ``seed``
    x = torch.stack([group.layout.initial(torch.Generator().manual_seed(seed)) for _ in group.matchers])
    x = x.to(device).requires_grad_(True)
    initial = x.detach().clone()
    lr = config.lr if config.optimizer == "adam" else IG_LR
    optimiser = torch.optim.Adam([x], lr=lr)
    milestones = [int(f * config.iterations) for f in DECAYS]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones, gamma=0.1)
    best_x, best = x.detach().clone(), torch.full((len(group.matchers),), math.inf, device=device)
    steps = 0
    for step in range(config.iterations + 1):
        temperature = temperature_at(step, config.iterations, config) if step < config.iterations else None
        loss = group.loss(x, temperature, config.ig_tv_weight)
        if temperature is None:  # only exact-model losses compete for best
            with torch.no_grad():
                better = torch.isfinite(loss) & (loss < best)
                best = torch.where(better, loss.detach(), best)
                best_x[better] = x.detach()[better]
        if step == config.iterations or time.perf_counter() > deadline:
            break
        (grad,) = torch.autograd.grad(loss.sum(), [x])
        x.grad = grad.sign()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            group.layout.clamp_(x)
        steps += 1
    return best_x, best, initial, steps


def _labels(matcher: GradientMatcher, observed: ObservedUpdate, seed: int) -> torch.Tensor:
    if observed.labels is not None:
        return torch.tensor(observed.labels, dtype=torch.long)
    probs = mean_prediction(matcher, seed) if matcher.layout.batch > 1 else None
    return infer_labels(matcher.target, matcher.last_linear_name(), matcher.layout.batch, probs)


def _run(observed: Sequence[ObservedUpdate], config: AttackConfig) -> list[Reconstruction]:
    start = time.perf_counter()
    deadline = start + config.time_budget_s * len(observed) if config.time_budget_s else math.inf
    matchers = [GradientMatcher(o, config) for o in observed]
    if config.relax_spikes and matchers[0].layout.kind != "image" and is_spiking(matchers[0].model):
        raise ValueError("relax_spikes needs static images with the 'static' dummy layout")
    group = Group(matchers, [_labels(m, o, config.seed) for m, o in zip(matchers, observed)])
    best_x = best = initial = None
    steps = 0
    for restart in range(config.restarts):
        x, loss, init, taken = run_restart(group, config, config.seed + restart, deadline)
        steps += taken
        if best is None:
            best_x, best, initial = x, loss, init
        else:
            better = loss < best
            best = torch.where(better, loss, best)
            best_x[better], initial[better] = x[better], init[better]
        if time.perf_counter() > deadline:
            break
    wall = (time.perf_counter() - start) / len(observed)
    return [_result(matcher, best_x[v], float(best[v]), initial[v], group, v, config, steps, restart + 1, wall)
            for v, matcher in enumerate(matchers)]


def _result(matcher: GradientMatcher, dummy: torch.Tensor, loss: float, initial: torch.Tensor, group: Group, v: int,
            config: AttackConfig, steps: int, restarts: int, wall: float) -> Reconstruction:
    """Victim ``v``'s best dummy in the data's layout (boxed, thresholded if asked), with its diagnostics."""
    status = "diverged" if not math.isfinite(loss) else "converged" if loss < config.tolerance else "budget"
    final = dummy.detach().clone()
    matcher.layout.clamp_(final)
    samples = matcher.layout.to_data(final).cpu()
    if config.thresholding == "post":
        samples = binarise(samples, config.tau)
    facts = matcher.diagnostics(final, group.probs[v])
    facts.update(attack="ig", restarts_run=restarts, group_size=len(group.matchers), relaxed=config.relax_spikes,
                 tv_weight=config.ig_tv_weight)
    if is_spiking(matcher.model):
        facts["spike_flips"] = spike_flips(matcher.model, final, seed=config.seed)
    return Reconstruction(
        samples=samples, labels=group.labels[v].cpu(), status=status, final_loss=loss,
        reason=f"IG loss {loss:.4g} after {steps} steps over {restarts} restart(s)",
        iterations=steps, evaluations=steps + restarts, wall_time_s=wall, diagnostics=facts,
        initial=matcher.layout.to_data(initial.detach()).cpu(),
    )


def reconstruct_group(observed: Sequence[ObservedUpdate], config: AttackConfig) -> list[Reconstruction]:
    """Every victim; same (spec, modality, batch) run together, at most ``MAX_GROUP`` at a time. Never raises."""
    groups: dict[tuple, list[int]] = {}
    for i, o in enumerate(observed):
        groups.setdefault((o.spec, o.modality, o.reconstruction_size), []).append(i)
    results: list[Reconstruction | None] = [None] * len(observed)
    for members in groups.values():
        for s in range(0, len(members), MAX_GROUP):
            chunk = members[s:s + MAX_GROUP]
            start = time.perf_counter()
            try:
                outputs = _run([observed[i] for i in chunk], config)
            except Exception as exc:  # an attack reports failure, it never raises
                reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
                outputs = [Reconstruction.failed(reason, time.perf_counter() - start) for _ in chunk]
            for i, r in zip(chunk, outputs):
                results[i] = r
    return results  # type: ignore[return-value]


def reconstruct(observed: ObservedUpdate, config: AttackConfig) -> Reconstruction:
    """Inverting Gradients on one update (a group of one)."""
    return reconstruct_group([observed], config)[0]
