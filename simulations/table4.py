"""Table IV of the FL-SNN paper: DLG, iDLG and GRNN on untrained LeNet vs SNN-LeNet.

For every cell (dataset, attack, model) and sample i: a seeded random TRAINING
sample, a fresh model (U(-0.5, 0.5) init, seed varied per sample as the paper
re-initialises), the client's FedSGD update on that one sample (``train_local``:
update = -lr * gradient, exactly what fedsnn's clients send), the server's view
of it (``ObservedUpdate``), the attack, and only then scoring against ground
truth (``fedsnn.analysis.metrics``) and the judge (ASR)::

    python -m simulations.table4 --datasets mnist,lfw --attacks dlg,idlg,grnn \
        --models lenet,snn-lenet --samples 100 --snn-samples 20 \
        --data-dir /work/shared/data --out simulations/results/table4

Attacks with a batched form (DLG, iDLG) run on the fast path by default:
the samples of one cell go ``--batch`` at a time through
``attacks.reconstruct_many`` (one optimisation, victims exactly independent,
each with its own seed ``sample``), the batches spread over ``--workers``
processes; ``--batch 1`` runs every attack alone, as before. Attacks stop on
L-BFGS steps and ``--tolerance`` (recorded per line), so a record does not
depend on the machine's load; ``--time-budget`` is only a safety guard, off
by default, whose stops say 'time guard fired'. GRNN always runs one sample
at a time. Every record also scores the controls (mean image and label-only
guess from the dataset's test split, the attack's starting dummy) and the
gains over the label-only guess (``simulations.common.score``).

Writes to ``--out``: records.jsonl / records.csv (one line per attack, appended
and flushed; a rerun skips finished samples), invocations.jsonl (config, git
commit, library versions), and, through ``simulations.table4_report``,
summary.json, table4.md (ours beside the paper's) and grid.png.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import sys
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch

from attacks import BATCHED, AttackConfig, ObservedUpdate, Reconstruction, get_attack, reconstruct_many
from attacks.batched import MAX_VICTIMS
from attacks.core import AuxiliaryData
from fedsnn.analysis.judges import DEFAULT_CACHE, load_judge
from fedsnn.experiment.runs import RecordLog, read_jsonl
from fedsnn.experiment.simulated_client import client_update
from fedsnn.provenance import provenance
from fedsnn.task.data import LabelledData, load_dataset
from fedsnn.task.models import ModelSpec
from simulations.common import encode_pixels, sample_indices, score
from simulations.table4_report import GRID, SCORES, cached_judge, report

CSV_FIELDS = ["dataset", "model", "attack", "sample", "train_index", "label", "model_seed", "status", "final_loss",
              "iterations", "evaluations", "seconds", "inferred_label", *SCORES, "mean_firing_rate", "reason"]


@dataclass(frozen=True)
class Task:
    """One attack on one sample; everything a worker process needs."""

    dataset: str
    model: str
    attack: str
    sample: int
    train_index: int
    data_dir: str
    seed: int
    lr: float
    timesteps: int
    time_budget: float | None
    cache_dir: str
    judge: bool = True
    tolerance: float = 1e-6
    iterations: int = 300
    grnn_iterations: int = 1000


@dataclass(frozen=True)
class Victim:
    """One task's ground truth (x [C, H, W] or [T, C, H, W], scalar y) and what the server observes."""

    x: torch.Tensor
    y: torch.Tensor
    model_seed: int
    observed: ObservedUpdate


def prepare(task: Task, train: LabelledData) -> Victim:
    """The client's update on the task's sample (a fresh model seeded per sample)."""
    x, y = train.samples[task.train_index], train.labels[task.train_index]
    model_seed = task.seed * 1_000_003 + task.sample
    spec = ModelSpec(task.model, train.input_shape, train.num_classes, timesteps=task.timesteps)
    return Victim(x, y, model_seed, client_update(spec, model_seed, x, y, task.lr))  # the attacker sees only this


def train_split(task: Task) -> LabelledData:
    return load_dataset(task.dataset, task.data_dir, timesteps=task.timesteps, seed=task.seed).train


@lru_cache(maxsize=4)
def auxiliary(dataset: str, data_dir: str, timesteps: int, seed: int) -> AuxiliaryData:
    """The controls' source: the test split (data the attacker may hold; the victims are training samples)."""
    test = load_dataset(dataset, data_dir, timesteps=timesteps, seed=seed).test
    return AuxiliaryData(test.samples, test.labels, test.num_classes, f"{dataset} test split ({len(test)} samples)")


def attack_config(task: Task, seed: int = 0) -> AttackConfig:
    """Deterministic stops (iterations, tolerance); the wall-clock guard only if asked for."""
    return AttackConfig(seed=seed, time_budget_s=task.time_budget, tolerance=task.tolerance,
                        iterations=task.iterations, grnn_iterations=task.grnn_iterations)


def run_task(task: Task) -> dict[str, object]:
    """Attack one sample alone and score it; returns the record (reconstruction kept for sample < GRID)."""
    torch.set_num_threads(1)
    victim = prepare(task, train_split(task))
    rec = get_attack(task.attack)(victim.observed, attack_config(task, task.sample))
    return make_record(task, victim, rec)


def run_batch(tasks: list[Task]) -> list[dict[str, object]]:
    """Attack the samples of one cell in one batched optimisation; records in task order.

    Victim i uses seed ``tasks[i].sample`` as alone, and the per-attack time
    budget on its share of the batch's time.
    """
    torch.set_num_threads(1)
    first = tasks[0]
    train = train_split(first)
    victims = [prepare(t, train) for t in tasks]
    recs = reconstruct_many([v.observed for v in victims], attack_config(first), first.attack,
                            max_victims=len(tasks), seeds=[t.sample for t in tasks])
    return [make_record(t, v, r) for t, v, r in zip(tasks, victims, recs)]


def make_record(task: Task, victim: Victim, rec: Reconstruction) -> dict[str, object]:
    """Score one reconstruction (the evaluator) and lay out its record."""
    x, y, model_seed = victim.x, victim.y, victim.model_seed
    judge = cached_judge(task.dataset, task.data_dir, task.seed, task.cache_dir) if task.judge else None
    rates = rec.diagnostics.get("firing_rates")
    record: dict[str, object] = {
        "dataset": task.dataset, "model": task.model, "attack": task.attack, "sample": task.sample,
        "train_index": task.train_index, "label": int(y), "model_seed": model_seed, "status": rec.status,
        "reason": rec.reason.splitlines()[0][:200] if rec.reason else "", "final_loss": rec.final_loss,
        "iterations": rec.iterations, "evaluations": rec.evaluations, "seconds": rec.wall_time_s,
        "tolerance": task.tolerance, "budget": {"iterations": task.iterations, "grnn_iterations": task.grnn_iterations},
        **score(rec, x, y, judge, auxiliary(task.dataset, task.data_dir, task.timesteps, task.seed)),
        "firing_rates": rates, "mean_firing_rate": float(np.mean(rates)) if rates else None,
        "observed_grad_norm": rec.diagnostics.get("observed_grad_norm"),
    }
    if task.sample < GRID and rec.samples.numel():
        record["recon_uint8"] = encode_pixels(rec.samples[0])
    return record


def worker_init() -> None:
    torch.set_num_threads(1)


def batches(tasks: list[Task], size: int, workers: int) -> list[list[Task]]:
    """Consecutive tasks of one cell in groups of at most ``size`` (spread so that every
    worker gets a share of a cell); attacks without a batched form go one by one."""
    cells: dict[tuple, list[Task]] = {}
    for t in tasks:
        cells.setdefault((t.dataset, t.model, t.attack, t.time_budget), []).append(t)
    out = []
    for (_, _, attack, _), members in cells.items():
        step = min(size, -(-len(members) // max(1, workers))) if attack in BATCHED else 1
        out += [members[i:i + step] for i in range(0, len(members), step)]
    return out


def run_unit(unit: list[Task], batched: bool = True) -> list[dict[str, object]]:
    """A batch of one cell through the fast path, or its tasks one at a time."""
    if batched and unit[0].attack in BATCHED:
        return run_batch(unit)
    return [run_task(t) for t in unit]


def run_tasks(tasks: list[Task], log: RecordLog, workers: int, batch: int = MAX_VICTIMS) -> None:
    """Run ``tasks`` in ``workers`` processes (1 = in this process), appending each record as it lands.

    ``batch`` > 1: the fast path, ``batches(tasks, batch, workers)``; 1: every attack alone.
    """
    units = batches(tasks, batch, workers) if batch > 1 else [[t] for t in tasks]
    run = partial(run_unit, batched=batch > 1)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(mp.get_context("spawn").Pool(workers, initializer=worker_init))
            outputs = pool.imap(run, units)
        else:
            outputs = map(run, units)
        for unit, records in zip(units, outputs):
            for task, record in zip(unit, records):
                log.append(record)
                _progress(task)


def _progress(task: Task) -> None:
    print(f"done {task.dataset}/{task.model}/{task.attack} sample {task.sample}", flush=True)



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m simulations.table4", description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist")
    p.add_argument("--attacks", default="idlg")
    p.add_argument("--models", default="lenet")
    p.add_argument("--samples", type=int, default=10, help="samples per LeNet cell")
    p.add_argument("--snn-samples", type=int, default=None, help="samples per SNN-LeNet cell (default --samples)")
    p.add_argument("--data-dir", default="")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.1, help="client learning rate")
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--time-budget", type=float, default=None,
                   help="wall-clock safety guard per attack (default: off; recorded when it fires)")
    p.add_argument("--tolerance", type=float, default=1e-6, help="stop once the matching loss is below it")
    p.add_argument("--iterations", type=int, default=300, help="L-BFGS steps per DLG/iDLG attack (the paper's 300)")
    p.add_argument("--grnn-iterations", type=int, default=1000, help="GRNN generator updates (the paper's 1000)")
    p.add_argument("--snn-time-budget", type=float, default=None, help="per SNN attack (default --time-budget)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--batch", type=int, default=MAX_VICTIMS,
                   help=f"DLG/iDLG samples per batched optimisation (default {MAX_VICTIMS}); 1: one at a time")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    p.add_argument("--no-judge", action="store_true", help="skip the judge (no ASR)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    datasets, attacks, models = (s.split(",") for s in (args.datasets, args.attacks, args.models))
    for name in attacks:
        get_attack(name)  # unknown names fail here, listing the valid ones
    RecordLog(out / "invocations.jsonl").append({"argv": sys.argv[1:] if argv is None else argv, "config": vars(args), **provenance()})
    log = RecordLog(out / "records.jsonl", out / "records.csv", CSV_FIELDS)
    done = {(r["dataset"], r["attack"], r["model"], r["sample"]) for r in read_jsonl(out / "records.jsonl")}
    tasks = []
    for dataset in datasets:
        if not args.no_judge and load_judge(dataset, args.data_dir, seed=args.seed, cache_dir=args.cache_dir) is None:
            print(f"no judge for {dataset}: ASR will not be scored")
        size = len(load_dataset(dataset, args.data_dir, timesteps=args.timesteps, seed=args.seed).train)
        for attack in attacks:
            for model in models:
                snn = model == "snn-lenet"
                count = args.snn_samples if snn and args.snn_samples is not None else args.samples
                budget = args.snn_time_budget if snn and args.snn_time_budget else args.time_budget
                for i, index in enumerate(sample_indices(dataset, size, count, args.seed)):
                    if (dataset, attack, model, i) not in done:
                        tasks.append(Task(dataset, model, attack, i, index, args.data_dir, args.seed, args.lr,
                                          args.timesteps, budget, args.cache_dir, not args.no_judge, args.tolerance,
                                          args.iterations, args.grnn_iterations))
    print(f"{len(tasks)} attacks to run ({len(done)} already recorded)", flush=True)
    run_tasks(tasks, log, args.workers, args.batch)
    report(out, args.data_dir, args.seed, args.timesteps, args.cache_dir)



if __name__ == "__main__":
    main()
