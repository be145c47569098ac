"""Reproduce the GAMIN-SNN paper and measure what it leaks: targets, controls, seeds, leakage checks.

    python -m simulations.gamin.reproduce --dataset mnist --data-dir /work/shared/data \
        --budget 25600 --seeds 0,1,2 --out simulations/results/gamin/leakage-mnist

For every seed s (target training seed and GAMIN seed) and target kind
(``--targets``, plus ``--controls``: "untrained" = the same architecture and
encoding at its initial weights, "invalid" = NaN weights, which must stop
with status "invalid-target"), every class is inverted at ``--budget``
queries and scored with the paper's five metrics and the leakage checks of
``fedsnn.analysis.gamin_scoring`` (judge-recognised rate, closeness to the
training data), beside the floors and ceilings (random probes, class means,
held-out images). Writes under --out: per_class.jsonl (one line per unit,
appended as each ends), references.json, tables.md, table2.csv, grid.png,
run.json. ``--resume`` continues a stopped run, skipping recorded units.
Trained targets are cached outside git (--cache-dir) and reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import torch

from attacks.blackbox import PROBES, GaminConfig
from fedsnn.analysis.gamin_scoring import reference_pools, reference_scores
from fedsnn.analysis.judges import load_judge
from fedsnn.provenance import provenance
from fedsnn.task.data import LabelledData, load_dataset
from fedsnn.task.models import Target, TargetSpec, build_target, load_target, save_target
from fedsnn.task.target_training import accuracy, train_target
from simulations.gamin.report import save_leakage_grid, write_leakage_tables
from simulations.gamin.units import base_kind, invert_target, make_invalid, read_units

DEFAULT_LR = 1e-3
CONTROLS = ("untrained", "invalid")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("mnist", "att-faces"), required=True)
    p.add_argument("--data-dir", default="", help="'' = the embedded 5k MNIST sample")
    p.add_argument("--budget", type=int, default=1_280_000, help="target queries per class (paper: 1,280,000)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resume", action="store_true", help="continue the run in --out, skipping recorded units")
    p.add_argument("--report-only", action="store_true", help="rewrite the tables and grid of --out from its records")
    p.add_argument("--targets", default="ann,snn")
    p.add_argument("--controls", default="untrained,invalid", help=f"comma-separated from {CONTROLS}, or 'none'")
    p.add_argument("--classes", default="", help="comma-separated class indices; '' = all")
    p.add_argument("--snn-classes", default="", help="classes for SNN kinds; '' = --classes")
    p.add_argument("--seeds", default="0", help="target training and GAMIN seeds, e.g. 0,1,2")
    p.add_argument("--control-seeds", default="", help="seeds of the untrained control; '' = --seeds")
    p.add_argument("--train-size", type=int, default=0, help="train targets on this many training images; 0 = all")
    p.add_argument("--epochs-ann", type=int, default=10)
    p.add_argument("--epochs-snn", type=int, default=2)
    p.add_argument("--train-batch", type=int, default=128, help="MNIST; AT&T uses 32")
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help="Adam lr, cosine-annealed; SNN fc1's scaled by 784/D")
    p.add_argument("--lr-ann", type=float, default=None, help="ANN target's lr (default: --lr)")
    p.add_argument("--lr-snn", type=float, default=None, help="SNN target's lr (default: --lr)")
    p.add_argument("--batch-size", type=int, default=64, help="GAMIN batch (queries = 2x per iteration)")
    p.add_argument("--pool-per-class", type=int, default=150, help="training images per class for closeness")
    p.add_argument("--no-judge", action="store_true", help="skip the judge (judge-recognised rate not measured)")
    p.add_argument("--cache-dir", type=Path, default=Path(".fedsnn-cache/gamin"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log-every", type=int, default=0)
    p.add_argument("--warmup", type=int, default=0, help="GAMIN: ignore M_global for N iterations (0 = paper)")
    p.add_argument("--probes", choices=PROBES, default="normal", help="GAMIN random inputs X_S (and F_S's)")
    return p.parse_args(argv)


def target_path(cache_dir: Path, dataset: str, kind: str, epochs: int, seed: int, lr: float = DEFAULT_LR,
                train_size: int = 0) -> Path:
    """Cache file of one trained target ("v3": cosine schedule, SNN fc1 lr scaled by 784/D).

    A non-default lr or training-set size is part of the name, so targets trained differently never share a file.
    """
    lr_tag = "" if lr == DEFAULT_LR else f"-lr{lr:g}"
    size_tag = f"-n{train_size}" if train_size else ""
    return cache_dir / f"{dataset}-{kind}-v3-e{epochs}{lr_tag}{size_tag}-s{seed}.pt"


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


def training_subset(train: LabelledData, size: int) -> LabelledData:
    """The first ``size`` images of a fixed (seed 0) permutation; all when size is 0. Shared by every seed."""
    if not size or size >= len(train):
        return train
    return train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:size])


def get_target(kind: str, seed: int, data: LabelledData, test: LabelledData, args: argparse.Namespace,
               log: Callable[[str], None]) -> tuple[Target, float, float]:
    """The target of ``kind`` for ``seed``: trained (cached), or a control; (model, test accuracy, training s)."""
    base = base_kind(kind)
    spec = TargetSpec(base, data.input_shape, data.num_classes)
    if kind.endswith("-untrained") or kind.endswith("-invalid"):
        model = build_target(spec, seed).eval()  # the trained target's starting point
        model = make_invalid(model) if kind.endswith("-invalid") else model
        return model, accuracy(model, test), 0.0
    epochs = args.epochs_ann if base == "ann" else args.epochs_snn
    lr = {"ann": args.lr_ann, "snn": args.lr_snn}[base] or args.lr
    path = target_path(args.cache_dir, args.dataset, base, epochs, seed, lr, args.train_size)
    if path.exists():
        model, acc = load_target(path)
        log(f"{kind} seed {seed}: loaded {path} (test accuracy {acc:.2f}%)")
        return model, acc, 0.0
    start = time.perf_counter()
    model = build_target(spec, seed)
    batch = args.train_batch if args.dataset == "mnist" else 32
    train_target(model, data, epochs, batch_size=batch, lr=lr, seed=seed, log=lambda s: log(f"{kind} seed {seed} {s}"))
    seconds = time.perf_counter() - start
    acc = accuracy(model, test)
    save_target(model, path, acc)
    log(f"{kind} seed {seed}: trained in {seconds:.0f} s on {len(data)} images, test accuracy {acc:.2f}%")
    return model, acc, seconds


def kinds_of(args: argparse.Namespace) -> list[str]:
    targets = args.targets.split(",")
    controls = [] if args.controls == "none" else args.controls.split(",")
    for c in controls:
        if c not in CONTROLS:
            raise SystemExit(f"--controls: unknown control {c!r}; expected some of {CONTROLS} or 'none'")
    return targets + [f"{t}-{c}" for c in controls for t in targets]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not (args.resume or args.report_only) and ((args.out / "run.json").exists() or (args.out / "per_class.jsonl").exists()):
        raise SystemExit(f"--out {args.out} already holds a run; choose a new folder or pass --resume")
    args.out.mkdir(parents=True, exist_ok=True)
    logfile = (args.out / "log.txt").open("a")

    def log(line: str) -> None:
        print(line, flush=True)
        logfile.write(line + "\n")
        logfile.flush()

    t0 = time.perf_counter()
    split = load_dataset(args.dataset, args.data_dir)
    train = training_subset(split.train, args.train_size)
    all_classes = list(range(train.num_classes))
    classes = [int(c) for c in args.classes.split(",")] if args.classes else all_classes
    snn_classes = [int(c) for c in args.snn_classes.split(",")] if args.snn_classes else classes
    seeds = [int(s) for s in args.seeds.split(",")]
    control_seeds = [int(s) for s in args.control_seeds.split(",")] if args.control_seeds else seeds
    judge = None if args.no_judge else load_judge(args.dataset, args.data_dir)
    pools = reference_pools(train, judge, args.pool_per_class, seed=0)
    references_file = args.out / "references.json"
    if args.report_only and references_file.exists():
        references = json.loads(references_file.read_text())
    else:
        references = {name: [leak.summary() | {"class": leak.target_class} for leak in leaks]
                      for name, leaks in reference_scores(pools, judge, split.test, train).items()}
        references_file.write_text(json.dumps(references, indent=1))
    accuracies = json.loads((args.out / "targets.json").read_text()) if (args.out / "targets.json").exists() else {}
    timings = {}
    config = GaminConfig(budget=args.budget, batch_size=args.batch_size, seed=seeds[0], log_every=args.log_every,
                         warmup=args.warmup, probes=args.probes)
    for kind in ([] if args.report_only else kinds_of(args)):
        for seed in (control_seeds if kind.endswith("-untrained") else seeds):
            model, acc, train_s = get_target(kind, seed, train, split.test, args, log)
            accuracies[f"{kind}-s{seed}"] = acc
            (args.out / "targets.json").write_text(json.dumps(accuracies, indent=1))
            config = replace(config, seed=seed)
            start = time.perf_counter()
            wanted = snn_classes if base_kind(kind) == "snn" else classes
            invert_target(kind, seed, model, wanted, config, split.test, judge, pools, args.out, log)
            timings[f"{kind}-s{seed}"] = {"train_s": train_s, "gamin_and_scoring_s": time.perf_counter() - start}
    units = read_units(args.out / "per_class.jsonl")
    log(write_leakage_tables(args.out, args.dataset, accuracies, units, references))
    save_leakage_grid(args.out / "grid.png", args.out / "samples", units, seeds[0],
                      f"GAMIN on {args.dataset} at {args.budget:,} queries per class (seed {seeds[0]})")
    runs = json.loads((args.out / "run.json").read_text())["invocations"] if (args.out / "run.json").exists() else []
    record = {
        "command": "python -m simulations.gamin.reproduce " + " ".join(sys.argv[1:] if argv is None else argv),
        "args": {k: str(v) for k, v in vars(args).items()}, "gamin_config": asdict(config),
        "target_spec": asdict(TargetSpec("snn", train.input_shape, train.num_classes)),
        "train_size": len(train), "classes": classes, "snn_classes": snn_classes, "seeds": seeds,
        "test_accuracy": accuracies, "timings_s": timings, "wall_time_s_this_invocation": time.perf_counter() - t0,
        **provenance(),
    }
    (args.out / "run.json").write_text(json.dumps({"invocations": runs + [record]}, indent=2))
    log(f"wall time of this invocation {record['wall_time_s_this_invocation']:.0f} s")


if __name__ == "__main__":
    main()
