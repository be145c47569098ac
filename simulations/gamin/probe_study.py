"""Which random probes X_S let a surrogate learn the target? (why GAMIN defaults to N(0, 1))

    python -m simulations.gamin.probe_study --targets ann,snn --steps 1000,300 \
        --out simulations/results/gamin/probe-study

The paper says only that the surrogate is trained on "random inputs". This
trains GAMIN's FC surrogate on probes alone (no generator: plain distillation
with GAMIN's soft-label cross-entropy, Adam 1e-4, batch 128) for each probe
distribution below and reports its accuracy on the real MNIST test set (A_S),
plus how the target labels the probes. A distribution on which the target
answers with every class teaches the surrogate the target's decision
boundaries; one it labels "3" throughout teaches nothing. Targets come from
``reproduce.py``'s cache (run it first). Writes probes.csv and probes.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import torch

from attacks.blackbox import fc_surrogate, oracle_for_target, percent_correct
from fedsnn.task.models import soft_cross_entropy
from fedsnn.task.data import load_dataset
from simulations.gamin.report import write_rows
from simulations.gamin.reproduce import add_cached_target_args, load_cached_target

Probe = Callable[[int, torch.Generator], torch.Tensor]  # (n, generator) -> [n, 1, 28, 28]
SHAPE = (1, 28, 28)


def _intensity(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=gen)


# normal N(0, 1); uniform U(0, 1); uniform-dimmed U(0, 1) x one U(0, 1) brightness per probe;
# sparse: U(0, 1) pixels kept with a per-probe random density; mnist-moments: N(0.1307, 0.3081) clamped to [0, 1]
PROBES: dict[str, Probe] = {
    "normal": lambda n, g: torch.randn(n, *SHAPE, generator=g),
    "uniform": lambda n, g: torch.rand(n, *SHAPE, generator=g),
    "uniform-dimmed": lambda n, g: torch.rand(n, *SHAPE, generator=g) * _intensity(n, g),
    "sparse": lambda n, g: torch.rand(n, *SHAPE, generator=g)
    * (torch.rand(n, *SHAPE, generator=g) < _intensity(n, g)).float(),
    "mnist-moments": lambda n, g: (0.1307 + 0.3081 * torch.randn(n, *SHAPE, generator=g)).clamp(0, 1),
}
COLUMNS = ("target", "probes", "steps", "A_S", "target_entropy", "target_label_counts", "wall_s")


def distill(oracle, probe: Probe, steps: int, seed: int, test) -> tuple[float, float, list[int]]:
    """Train a fresh FC surrogate on ``steps`` batches of 128 probes; (A_S %, entropy, label counts of the last batch)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    surrogate = fc_surrogate(SHAPE, 10)
    opt = torch.optim.Adam(surrogate.parameters(), lr=1e-4)
    for _ in range(steps):
        x = probe(128, gen)
        y = oracle.query(x)
        loss = soft_cross_entropy(surrogate(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        predicted = torch.cat([surrogate(chunk).argmax(-1) for chunk in test.samples.split(1000)])
    entropy = -(y * y.clamp_min(1e-12).log()).sum(-1).mean().item()
    return percent_correct(predicted, test.labels), entropy, y.argmax(-1).bincount(minlength=10).tolist()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="/work/shared/data")
    p.add_argument("--targets", default="ann,snn")
    p.add_argument("--steps", default="1000,300", help="distillation steps per target, in --targets order")
    p.add_argument("--probes", default=",".join(PROBES), help="comma-separated names from: " + ", ".join(PROBES))
    add_cached_target_args(p)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    names = [n for n in args.probes.split(",") if n]
    for name in names:
        if name not in PROBES:
            raise SystemExit(f"--probes: unknown {name!r}; choose from {', '.join(PROBES)}")
    if (args.out / "probes.csv").exists():
        raise SystemExit(f"--out {args.out} already holds a study; choose a new folder")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    test = load_dataset("mnist", args.data_dir).test
    rows = []
    for kind, steps in zip(args.targets.split(","), (int(s) for s in args.steps.split(","))):
        model = load_cached_target(args, "mnist", kind)
        for name in names:
            start = time.perf_counter()
            a_s, entropy, counts = distill(oracle_for_target(model, seed=args.seed), PROBES[name], steps, args.seed, test)
            rows.append([kind, name, str(steps), f"{a_s:.1f}", f"{entropy:.3f}", " ".join(map(str, counts)),
                         f"{time.perf_counter() - start:.0f}"])
            print(" | ".join(rows[-1]), flush=True)
            write_rows(args.out, "probes", COLUMNS, rows)


if __name__ == "__main__":
    main()
