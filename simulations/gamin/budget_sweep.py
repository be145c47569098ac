"""A_T against GAMIN's query budget on cached MNIST targets, paper rule vs warm-up.

    python -m simulations.gamin.budget_sweep --targets ann --classes 0,7 \
        --budgets 19200,64000,128000 --warmups 0,100 --out simulations/results/gamin/budget

Why: at small budgets the paper's keep-the-lowest-M_global rule keeps a pair
from the first ~40 iterations, while the generator is still noise. This shows
whether a larger budget (or ignoring M_global for a warm-up) escapes that.
Targets come from ``reproduce.py``'s cache (run it first). Writes budget.csv
and budget.md (one row per target, class, budget, warm-up).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from attacks.blackbox import GaminConfig, attack_class, oracle_for_target
from fedsnn.task.data import load_dataset
from fedsnn.analysis.gamin_scoring import evaluate_gamin
from simulations.gamin.report import write_rows
from simulations.gamin.reproduce import add_cached_target_args, load_cached_target

COLUMNS = ("target", "class", "budget", "warmup", "best_iteration", "m_global", "A_SoG", "A_T", "wall_s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="/work/shared/data")
    p.add_argument("--targets", default="ann")
    p.add_argument("--classes", default="0,7")
    p.add_argument("--budgets", default="19200,64000,128000")
    p.add_argument("--warmups", default="0,100")
    add_cached_target_args(p)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    test = load_dataset("mnist", args.data_dir).test
    rows = []
    for kind in args.targets.split(","):
        model = load_cached_target(args, "mnist", kind)
        for c in (int(x) for x in args.classes.split(",")):
            for budget in (int(x) for x in args.budgets.split(",")):
                for warmup in (int(x) for x in args.warmups.split(",")):
                    config = GaminConfig(budget=budget, seed=args.seed, warmup=warmup)
                    start = time.perf_counter()
                    r = attack_class(oracle_for_target(model, seed=args.seed), config, c, log=lambda s: None)
                    (r,) = evaluate_gamin([r], test, oracle_for_target(model, seed=args.seed + 1), seed=args.seed,
                                         probes=config.probes)
                    rows.append([str(v) for v in (kind, c, budget, warmup, r.best_iteration, f"{r.m_global:.4f}",
                                 f"{r.combined_accuracy:.1f}", f"{r.target_accuracy:.1f}",
                                 f"{time.perf_counter() - start:.0f}")])
                    print(" ".join(rows[-1]), flush=True)
                    write_rows(args.out, "budget", COLUMNS, rows)


if __name__ == "__main__":
    main()
