"""Does the SNN leak less? ANN and SNN on the same MNIST test digits, with controls, intervals and a paired test.

For every attack the registry holds (``attacks.ATTACKS``), every init and both
models, sample i is the same MNIST TEST digit and the same model seed
(``i % seeds``, so ``--seeds`` model initialisations share the samples): a
fresh client's FedSGD update on that one digit (``fedsnn.experiment.
simulated_client``), the attack on what the server observes, then scoring
against the digit and against the controls (mean image and class means of
the MNIST TRAIN split, which the attacker declares it holds; the attack's
own starting dummy). An attack whose ``reconstruct`` takes ``auxiliary``
gets that same declared train split. ::

    python -m simulations.verdict --data-dir /work/shared/data --out simulations/results/verdict

DLG and iDLG run on the batched path (``attacks.reconstruct_many``), the
learned decoder and Inverting Gradients on their group path (one decoder per
model seed, IG's victims stacked; ``attacks.reconstruct_all``), all on
``--samples`` per cell; GRNN one sample at a time on ``--slow-samples``. The
analytic attack recovers labels and features, not inputs: it has no image to
score here (its exactness is in ``simulations.adaptive``'s report) and it
feeds the learned attack, which is scored. Budgets
are deterministic (L-BFGS steps, evaluations per step, loss tolerance; no
wall-clock guard), so a record is the same on any machine. Records are
appended as they land (records.jsonl); a rerun skips finished samples. The
report (``simulations.verdict_report``) is rewritten at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from attacks import (ATTACKS, BATCHED, FEATURES_ONLY, GROUPED, NEEDS_AUXILIARY, AttackConfig, Reconstruction,
                     get_attack, reconstruct_all, reconstruct_many)
from attacks.core import AuxiliaryData
from fedsnn.analysis.judges import DEFAULT_CACHE, load_judge
from fedsnn.analysis.metrics import judge_correct
from fedsnn.experiment.runs import RecordLog, read_jsonl
from fedsnn.experiment.simulated_client import client_update
from fedsnn.provenance import provenance
from fedsnn.task.data import LabelledData, load_dataset
from fedsnn.task.models import INITS, ModelSpec
from simulations.common import encode_pixels, sample_indices, score
from simulations.verdict_report import GRID, MODELS, report


@dataclass(frozen=True)
class Cell:
    attack: str
    init: str
    model: str


@dataclass(frozen=True)
class Study:
    """Everything fixed across the cells: data, judge, auxiliary data, settings."""

    test: LabelledData
    picks: list[int]
    aux: AuxiliaryData
    judge: object
    args: argparse.Namespace

    def attack_config(self, attack: str, init: str, seed: int) -> AttackConfig:
        """The deterministic budget of a cell: L-BFGS steps (fewer under the default init, see
        ``--default-iterations``; IG: ``--ig-iterations`` Adam steps), evaluations per step, tolerance; no
        wall-clock guard. Attacks that need auxiliary data get the declared train split."""
        a = self.args
        steps = a.ig_iterations if attack == "ig" else a.default_iterations if init == "default" else a.iterations
        return AttackConfig(iterations=steps, max_eval=a.max_eval, tolerance=a.tolerance,
                            grnn_iterations=a.grnn_iterations, seed=seed, time_budget_s=None,
                            auxiliary=self.aux if attack in NEEDS_AUXILIARY else None)


def samples_per_cell(attack: str, args: argparse.Namespace) -> int:
    """``--samples`` for the attacks that share work across victims, ``--slow-samples`` for the rest."""
    return args.samples if attack in BATCHED or attack in GROUPED else args.slow_samples


def run_cell(study: Study, cell: Cell, samples: list[int], log: RecordLog) -> None:
    """Attack ``samples`` of one cell and append one record per sample."""
    spec = ModelSpec(cell.model, study.test.input_shape, study.test.num_classes, init=cell.init,
                     timesteps=study.args.timesteps)
    victims = []
    for i in samples:
        x, y = study.test.samples[study.picks[i]], study.test.labels[study.picks[i]]
        victims.append((i, x, y, client_update(spec, i % study.args.seeds, x, y, study.args.lr)))
    start = time.perf_counter()
    if cell.attack in BATCHED:
        for chunk in range(0, len(victims), study.args.batch):
            part = victims[chunk:chunk + study.args.batch]
            recs = reconstruct_many([v[3] for v in part], study.attack_config(cell.attack, cell.init, 0),
                                    cell.attack, max_victims=len(part), seeds=[v[0] for v in part])
            for v, rec in zip(part, recs):
                log.append(make_record(study, cell, v[0], v[1], v[2], rec))
    elif cell.attack in GROUPED:  # one group per model seed: one global model, one decoder (or IG stack)
        for seed in sorted({v[0] % study.args.seeds for v in victims}):
            part = [v for v in victims if v[0] % study.args.seeds == seed]
            recs = reconstruct_all([v[3] for v in part], study.attack_config(cell.attack, cell.init, seed), cell.attack)
            for v, rec in zip(part, recs):
                log.append(make_record(study, cell, v[0], v[1], v[2], rec))
    else:
        for i, x, y, observed in victims:
            rec = get_attack(cell.attack)(observed, study.attack_config(cell.attack, cell.init, i))
            log.append(make_record(study, cell, i, x, y, rec))
    print(f"{cell.attack}/{cell.init}/{cell.model}: {len(samples)} samples in {time.perf_counter() - start:.0f} s",
          flush=True)


def make_record(study: Study, cell: Cell, sample: int, x: torch.Tensor, y: torch.Tensor,
                rec: Reconstruction) -> dict[str, object]:
    """The evaluator: one sample's scores, controls and gains, with the attack's own statistics."""
    config = study.attack_config(cell.attack, cell.init, sample)
    record: dict[str, object] = {
        "attack": cell.attack, "init": cell.init, "model": cell.model, "sample": sample,
        "test_index": study.picks[sample], "label": int(y), "model_seed": sample % study.args.seeds,
        "status": rec.status, "reason": rec.reason.splitlines()[0][:200] if rec.reason else "",
        "final_loss": rec.final_loss if np.isfinite(rec.final_loss) else None, "iterations": rec.iterations,
        "evaluations": rec.evaluations, "seconds": rec.wall_time_s,
        "budget": {k: getattr(config, k) for k in ("iterations", "max_eval", "tolerance", "grnn_iterations")},
        "auxiliary": study.aux.source if cell.attack in NEEDS_AUXILIARY else None,
        **score(rec, x, y, study.judge, study.aux),
        "judge_on_original": None if study.judge is None else bool(judge_correct(study.judge, x[None], y.view(1))[0]),
    }
    if sample < GRID and rec.samples.numel():
        record["recon_uint8"] = encode_pixels(rec.samples[0])
    return record


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m simulations.verdict", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", type=Path, default=Path("simulations/results/verdict"))
    p.add_argument("--attacks", default="all", help="comma-separated registry names, or 'all' (every attack that "
                                                     "reconstructs inputs)")
    p.add_argument("--inits", default=",".join(INITS))
    p.add_argument("--models", default=",".join(MODELS), help="run only these models (a paired cell needs both)")
    p.add_argument("--samples", type=int, default=100,
                   help="samples per cell, attacks that share work across victims (DLG, iDLG, learned, IG)")
    p.add_argument("--slow-samples", type=int, default=8, help="samples per cell, attacks run one at a time (GRNN)")
    p.add_argument("--seeds", type=int, default=3, help="model seeds; sample i uses seed i %% seeds")
    p.add_argument("--iterations", type=int, default=50, help="L-BFGS steps per attack (faithful: 300)")
    p.add_argument("--default-iterations", type=int, default=10,
                   help="L-BFGS steps under the PyTorch default init, where neither model converges and the SNN "
                        "does not stall (its cells cost ~8x more per step)")
    p.add_argument("--max-eval", type=int, default=20, help="evaluations per L-BFGS step")
    p.add_argument("--ig-iterations", type=int, default=200, help="Inverting Gradients' Adam steps")
    p.add_argument("--grnn-iterations", type=int, default=100, help="GRNN generator updates (paper: 1000)")
    p.add_argument("--tolerance", type=float, default=1e-6, help="stop once the matching loss is below it")
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.1, help="client learning rate")
    p.add_argument("--batch", type=int, default=34, help="victims per batched optimisation (records land per batch)")
    p.add_argument("--seed", type=int, default=0, help="seeds the choice of test digits")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    p.add_argument("--no-judge", action="store_true", help="skip the judge (no ASR, floor or ceiling)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    attacks = [a for a in ATTACKS if a not in FEATURES_ONLY] if args.attacks == "all" else args.attacks.split(",")
    for name in attacks:
        get_attack(name)  # unknown names fail here, listing the valid ones
        if name in FEATURES_ONLY:
            raise SystemExit(f"--attacks: {name!r} recovers labels and features, not inputs; the verdict scores "
                             f"images (its exactness: python -m simulations.adaptive)")
    data = load_dataset("mnist", args.data_dir, seed=args.seed)
    aux = AuxiliaryData(data.train.samples, data.train.labels, data.train.num_classes,
                        f"mnist train split ({len(data.train)} samples; the victims are test digits)")
    count = max(args.samples, args.slow_samples)
    study = Study(data.test, sample_indices("mnist-test", len(data.test), count, args.seed), aux,
                  None if args.no_judge else load_judge("mnist", args.data_dir, seed=0, cache_dir=args.cache_dir), args)
    started = time.time()
    RecordLog(args.out / "invocations.jsonl").append(
        {"argv": sys.argv[1:] if argv is None else argv, "config": {k: str(v) for k, v in vars(args).items()},
         "started": started, **provenance()})
    log = RecordLog(args.out / "records.jsonl")
    done = {(r["attack"], r["init"], r["model"], r["sample"]) for r in read_jsonl(args.out / "records.jsonl")}
    inits = args.inits.split(",")
    order = [(a, i) for i in inits for a in attacks if a in BATCHED]  # the cheap cells first
    order += [(a, i) for a in attacks if a in GROUPED for i in inits]
    order += [(a, i) for a in attacks if a not in BATCHED and a not in GROUPED for i in inits]
    for attack, init in order:
        n = samples_per_cell(attack, args)
        for model in args.models.split(","):
            todo = [i for i in range(n) if (attack, init, model, i) not in done]
            if todo:
                run_cell(study, Cell(attack, init, model), todo, log)
    RecordLog(args.out / "invocations.jsonl").append({"finished": time.time(), "started": started,
                                                      "wall_s": time.time() - started})
    report(args.out, args.data_dir)


if __name__ == "__main__":
    main()
