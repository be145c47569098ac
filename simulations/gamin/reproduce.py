"""Reproduce the GAMIN-SNN paper: train both FC targets, invert every class, report.

    python -m simulations.gamin.reproduce --dataset mnist --data-dir /work/shared/data \
        --budget 25600 --out simulations/results/gamin/mnist

Writes under --out: table1/table2 (.csv, tables.md, ours beside the paper),
per_class.csv, grid.png (Figs 3-4 layout) and run.json (command, config,
versions, wall times). Trained targets are cached outside git (--cache-dir)
and reused when present.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import snntorch
import torch

from attacks.blackbox import PROBES, GaminConfig, oracle_for_target, run_gamin
from fedsnn.analysis.scoring import evaluate_gamin
from fedsnn.task.data import LabelledData, load_dataset
from fedsnn.task.models import Target, TargetSpec, build_target, load_target, save_target
from fedsnn.task.target_training import accuracy, train_target
from simulations.gamin.report import save_grid, write_per_class, write_tables

DEFAULT_LR = 1e-3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("mnist", "att-faces"), required=True)
    p.add_argument("--data-dir", default="", help="'' = the embedded 5k MNIST sample")
    p.add_argument("--budget", type=int, default=1_280_000, help="target queries per class (paper: 1,280,000)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--targets", default="ann,snn")
    p.add_argument("--classes", default="", help="comma-separated class indices; '' = all")
    p.add_argument("--epochs-ann", type=int, default=10)
    p.add_argument("--epochs-snn", type=int, default=2)
    p.add_argument("--train-batch", type=int, default=128, help="MNIST; AT&T uses 32")
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help="Adam lr, cosine-annealed; SNN fc1's scaled by 784/D")
    p.add_argument("--lr-ann", type=float, default=None, help="ANN target's lr (default: --lr)")
    p.add_argument("--lr-snn", type=float, default=None, help="SNN target's lr (default: --lr)")
    p.add_argument("--batch-size", type=int, default=64, help="GAMIN batch (queries = 2x per iteration)")
    p.add_argument("--cache-dir", type=Path, default=Path(".fedsnn-cache/gamin"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=0)
    p.add_argument("--warmup", type=int, default=0, help="GAMIN: ignore M_global for N iterations (0 = paper)")
    p.add_argument("--probes", choices=PROBES, default="normal", help="GAMIN random inputs X_S (and F_S's)")
    return p.parse_args(argv)


def target_path(cache_dir: Path, dataset: str, kind: str, epochs: int, seed: int, lr: float = DEFAULT_LR) -> Path:
    """Cache file of one trained target ("v3": cosine schedule, SNN fc1 lr scaled by 784/D).

    A non-default lr is part of the name, so targets trained differently never share a file.
    """
    lr_tag = "" if lr == DEFAULT_LR else f"-lr{lr:g}"
    return cache_dir / f"{dataset}-{kind}-v3-e{epochs}{lr_tag}-s{seed}.pt"


def add_cached_target_args(p: argparse.ArgumentParser) -> None:
    """Flags naming a target trained earlier by this script (for the studies that reuse it)."""
    p.add_argument("--epochs-ann", type=int, default=10)
    p.add_argument("--epochs-snn", type=int, default=2)
    p.add_argument("--cache-dir", type=Path, default=Path(".fedsnn-cache/gamin"))
    p.add_argument("--seed", type=int, default=0)


def load_cached_target(args: argparse.Namespace, dataset: str, kind: str) -> Target:
    """The cached target of ``kind`` named by ``add_cached_target_args``' flags (run this script first)."""
    epochs = args.epochs_ann if kind == "ann" else args.epochs_snn
    model, _ = load_target(target_path(args.cache_dir, dataset, kind, epochs, args.seed))
    return model


def get_target(kind: str, data: LabelledData, test: LabelledData, args: argparse.Namespace,
               log: Callable[[str], None]) -> tuple[Target, float, float]:
    """Load the cached target or train it; returns (model, test accuracy, training seconds)."""
    epochs = args.epochs_ann if kind == "ann" else args.epochs_snn
    lr = {"ann": args.lr_ann, "snn": args.lr_snn}[kind] or args.lr
    path = target_path(args.cache_dir, args.dataset, kind, epochs, args.seed, lr)
    if path.exists():
        model, acc = load_target(path)
        log(f"{kind}: loaded {path} (test accuracy {acc:.2f}%)")
        return model, acc, 0.0
    start = time.perf_counter()
    model = build_target(TargetSpec(kind, data.input_shape, data.num_classes), args.seed)
    batch = args.train_batch if args.dataset == "mnist" else 32
    train_target(model, data, epochs, batch_size=batch, lr=lr, seed=args.seed, log=lambda s: log(f"{kind} {s}"))
    seconds = time.perf_counter() - start
    acc = accuracy(model, test)
    save_target(model, path, acc)
    log(f"{kind}: trained in {seconds:.0f} s, test accuracy {acc:.2f}%")
    return model, acc, seconds


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if (args.out / "run.json").exists() or (args.out / "log.txt").exists():
        raise SystemExit(f"--out {args.out} already holds a run; choose a new folder (results are never overwritten)")
    args.out.mkdir(parents=True, exist_ok=True)
    logfile = (args.out / "log.txt").open("w")

    def log(line: str) -> None:
        print(line, flush=True)
        logfile.write(line + "\n")
        logfile.flush()

    t0 = time.perf_counter()
    split = load_dataset(args.dataset, args.data_dir)
    classes = [int(c) for c in args.classes.split(",")] if args.classes else list(range(split.train.num_classes))
    config = GaminConfig(budget=args.budget, batch_size=args.batch_size, seed=args.seed, log_every=args.log_every,
                         warmup=args.warmup, probes=args.probes)
    (args.out / "per_class.csv").unlink(missing_ok=True)
    accuracies, results, timings = {}, {}, {}
    for kind in args.targets.split(","):
        model, accuracies[kind], train_s = get_target(kind, split.train, split.test, args, log)
        start = time.perf_counter()
        attack_oracle = oracle_for_target(model, budget=args.budget * len(classes), seed=args.seed)
        res = run_gamin(attack_oracle, config, classes, log=lambda s: log(f"{kind} {s}"))
        attack_s = time.perf_counter() - start
        results[kind] = evaluate_gamin(res, split.test, oracle_for_target(model, seed=args.seed + 1), seed=args.seed,
                                       probes=config.probes)
        timings[kind] = {"train_s": train_s, "attack_s": attack_s,
                         "evaluate_s": time.perf_counter() - start - attack_s, "queries": attack_oracle.used}
        write_per_class(args.out / "per_class.csv", kind, results[kind])
    originals = {c: split.train.samples[(split.train.labels == c).nonzero()[0, 0]] for c in classes}
    save_grid(args.out / "grid.png", results, originals, max_classes=10, per_class=2)
    if len(classes) > 10:
        save_grid(args.out / "grid_all.png", results, originals, max_classes=len(classes), per_class=1)
    log(write_tables(args.out, args.dataset, accuracies, results))
    record = {
        "command": "python -m simulations.gamin.reproduce " + " ".join(sys.argv[1:] if argv is None else argv),
        "args": {k: str(v) for k, v in vars(args).items()}, "gamin_config": asdict(config),
        "target_spec": asdict(TargetSpec("snn", split.train.input_shape, split.train.num_classes)),
        "classes": classes, "timings_s": timings, "wall_time_s": time.perf_counter() - t0,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "snntorch": snntorch.__version__, "platform": platform.platform()},
    }
    (args.out / "run.json").write_text(json.dumps(record, indent=2))
    log(f"total wall time {record['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
