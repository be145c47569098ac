"""Bench (a): batched vs one-at-a-time vs the plain peer, interleaved, timed by the thread's CPU clock.

Why this shape: on shared cores wall time measures the neighbours as much as
the code (a loaded 2-core machine gave 2.8x-12.6x for pairs that are 5-6x in
CPU time). So every ratio here comes from ``time.thread_time()`` of the one
thread torch runs on (``torch.set_num_threads(1)``), and the runs it compares
are interleaved on the same victims. Repeat r runs, in this order: for each of
the first ``--alone`` victims, fedsnn one at a time then the peer
(``bench.peer``) on it; the batched engine on all ``--victims`` (on LeNet:
with the numba kernel, then with its PyTorch stacked form, ``kernel='torch'``);
fedsnn one at a time on the ``--alone`` again. The alone side is the sum of both passes, so
it brackets the batched run in time, and the peer alternates with it victim by
victim: a change of the neighbours' load during a repeat then weighs on both
sides of a ratio. CPU time is not immune to neighbours (a core shared by
turns refills its caches after every switch, and small-tensor code such as
one victim's SNN evaluation suffers most), which is why the bracketing matters.
Each ratio is printed as median [min, max] over ``--repeats``; wall-clock
ratios (median) are printed beside them for reference only.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from attacks import AttackConfig, ObservedUpdate, get_attack, reconstruct_many
from bench import peer
from fedsnn.analysis.metrics import SUCCESS_MSE
from fedsnn.experiment.simulated_client import client_update
from fedsnn.task.data import load_dataset
from fedsnn.task.models import ModelSpec


def victims(spec: ModelSpec, count: int, data_dir: str = "") -> tuple[list[ObservedUpdate], torch.Tensor]:
    """``count`` FedSGD updates of one MNIST test digit each (model seed i), and the digits [count, 1, 28, 28].

    data_dir: the folder holding MNIST; '' = the sample shipped in the package.
    """
    test = load_dataset("mnist", data_dir).test
    out = [client_update(spec, i, test.samples[i], test.labels[i], 0.1) for i in range(count)]
    return out, test.samples[:count]


def quality(samples: list[torch.Tensor], truth: torch.Tensor) -> tuple[float, float]:
    """(success rate in %, median PSNR in dB) of reconstructions [1, C, H, W] each against truth [n, C, H, W];
    success = MSE < ``fedsnn.analysis.metrics.SUCCESS_MSE``; an empty reconstruction counts as MSE 1."""
    mse = [float(((s - truth[i:i + 1]) ** 2).mean()) if s.numel() else 1.0 for i, s in enumerate(samples)]
    return (100 * sum(m < SUCCESS_MSE for m in mse) / len(mse),
            statistics.median(10 * math.log10(1 / max(m, 1e-12)) for m in mse))


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(fn(), CPU seconds of this thread, wall seconds)."""
    cpu, wall = time.thread_time(), time.perf_counter()
    out = fn()
    return out, time.thread_time() - cpu, time.perf_counter() - wall


def spread(values: list[float], digits: int = 1) -> str:
    """'median [min, max]' of the repeats."""
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


@dataclass
class Side:
    """One contender's runs over the repeats: CPU and wall seconds, attacks run, evaluations per repeat."""

    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    attacks: list[int] = field(default_factory=list)
    evaluations: list[int] = field(default_factory=list)
    samples: list[torch.Tensor] = field(default_factory=list)  # the first pass of the last repeat

    def add(self, results: list, cpu: float, wall: float) -> None:
        """One repeat: its results (one per attack run, in victim order, possibly several passes)."""
        self.cpu.append(cpu)
        self.wall.append(wall)
        self.attacks.append(len(results))
        self.evaluations.append(sum(r.evaluations for r in results))
        self.samples = [r.samples for r in results]

    def per_victim(self, r: int, clock: str = "cpu") -> float:
        """Seconds per attack (one victim) in repeat r."""
        return getattr(self, clock)[r] / self.attacks[r]

    def per_evaluation(self, r: int, clock: str = "cpu") -> float:
        """Seconds per victim-evaluation (one matching loss and its gradient for one victim) in repeat r."""
        return getattr(self, clock)[r] / self.evaluations[r]


def ratios(slow: Side, fast: Side, per: str, repeats: int, clock: str = "cpu") -> list[float]:
    """slow's cost / fast's cost, per victim or per evaluation, one value per repeat."""
    cost = Side.per_victim if per == "victim" else Side.per_evaluation
    return [cost(slow, r, clock) / cost(fast, r, clock) for r in range(repeats)]


def interleaved(model: str, attack: str, args: argparse.Namespace) -> list[str]:
    """The lines of bench (a) for one model and attack (see the module docstring)."""
    spec = ModelSpec(model, (1, 28, 28), 10, timesteps=args.timesteps)
    iterations = args.iterations if model == "lenet" else args.snn_iterations
    config = AttackConfig(iterations=iterations)
    observed, truth = victims(spec, args.victims, args.data_dir)
    few = observed[:args.alone]
    sides = {"batched": Side(), "alone": Side(), "peer": Side()}
    kernel = observed[0].spec.name == "lenet" and config.kernel == "auto"  # the numba kernel runs: time the torch form too
    if kernel:
        sides["torch"] = Side()
    alone = lambda o: get_attack(attack)(o, config)
    for _ in range(args.repeats):
        clocks = {name: [0.0, 0.0] for name in sides}  # CPU, wall
        results: dict[str, list] = {name: [] for name in sides}

        def run(name: str, fn: Callable[[], object]) -> None:
            out, cpu, wall = timed(fn)
            results[name].extend(out if isinstance(out, list) else [out])
            clocks[name][0] += cpu
            clocks[name][1] += wall

        for o in few:
            run("alone", lambda: alone(o))
            run("peer", lambda: peer.reconstruct(o, attack, iterations))
        run("batched", lambda: reconstruct_many(observed, config, attack))
        if kernel:
            run("torch", lambda: reconstruct_many(observed, replace(config, kernel="torch"), attack))
        for o in few:
            run("alone", lambda: alone(o))
        for name, side in sides.items():
            side.add(results[name], *clocks[name])
        sides["alone"].samples = sides["alone"].samples[:args.alone]
    b, a, p = sides["batched"], sides["alone"], sides["peer"]
    n, k = args.repeats, args.alone
    qb, qa, qp = (quality(s.samples[:k], truth[:k]) for s in (b, a, p))
    qall = quality(b.samples, truth)
    ms = lambda side: spread([1e3 * side.per_evaluation(r) for r in range(n)], 2)
    wall = lambda slow, fast, per: statistics.median(ratios(slow, fast, per, n, "wall"))
    head = f"(a) {attack} {model}, {n} repeats, CPU time (wall):"
    lines = [
        f"{head} batched {args.victims} vs alone {k}: per victim {spread(ratios(a, b, 'victim', n))}x "
        f"({wall(a, b, 'victim'):.1f}x), per evaluation {spread(ratios(a, b, 'evaluation', n))}x "
        f"({wall(a, b, 'evaluation'):.1f}x); CPU ms per victim-evaluation batched {ms(b)}, alone {ms(a)}; "
        f"victims per CPU s batched {1 / statistics.median(b.per_victim(r) for r in range(n)):.2f}, alone "
        f"{1 / statistics.median(a.per_victim(r) for r in range(n)):.2f}; evaluations batched {b.evaluations[-1]}, "
        f"alone {a.evaluations[-1] // 2} (x2 passes) | "
        f"same {k}: success {qa[0]:.0f}% vs {qb[0]:.0f}%, median PSNR {qa[1]:.1f} vs {qb[1]:.1f} dB | "
        f"all batched: {qall[0]:.0f}%, {qall[1]:.1f} dB",
        f"{head} peer (plain torch.optim.LBFGS, nn.Module, autograd.grad) vs fedsnn alone on the same {k}: "
        f"per attack {spread(ratios(p, a, 'victim', n), 2)}x ({wall(p, a, 'victim'):.2f}x), per evaluation "
        f"{spread(ratios(p, a, 'evaluation', n), 2)}x ({wall(p, a, 'evaluation'):.2f}x); peer vs batched per victim "
        f"{spread(ratios(p, b, 'victim', n))}x; CPU ms per evaluation peer {ms(p)}; evaluations peer "
        f"{p.evaluations[-1]} vs {a.evaluations[-1] // 2} | success {qp[0]:.0f}% vs {qa[0]:.0f}%, median PSNR "
        f"{qp[1]:.1f} vs {qa[1]:.1f} dB",
    ]
    if kernel:
        t = sides["torch"]
        qt = quality(t.samples, truth)
        lines.append(
            f"{head} numba kernels vs PyTorch forms (kernel=torch), batched {args.victims}: per evaluation "
            f"{spread(ratios(t, b, 'evaluation', n), 2)}x ({wall(t, b, 'evaluation'):.2f}x), per victim "
            f"{spread(ratios(t, b, 'victim', n), 2)}x; PyTorch forms vs alone per evaluation "
            f"{spread(ratios(a, t, 'evaluation', n))}x; CPU ms per victim-evaluation PyTorch forms {ms(t)}; "
            f"evaluations {t.evaluations[-1]} vs {b.evaluations[-1]} | all {args.victims}: success "
            f"{qt[0]:.0f}% vs {qall[0]:.0f}%, median PSNR {qt[1]:.1f} vs {qall[1]:.1f} dB")
    return lines
