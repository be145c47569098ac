"""Target queries per second: fused SNN forward + fast rate code vs the plain snntorch loop.

    python bench/bench_gamin.py [--shape 1,28,28] [--batch 64] [--repeats 10] [--threads 1]

GAMIN's cost is dominated by target queries, so this is the number that sets
how large a budget fits in a given time. Both SNN paths run the same trained-
shape network (random weights, scaled so that layers spike) in the same
process; the ANN is shown for scale. Prints one line per path and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from snntorch import spikegen

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fedsnn.task.models import SNNTarget, TargetSpec, build_target  # noqa: E402


def per_second(fn: Callable[[], object], batch: int, repeats: int) -> float:
    """Queries (samples) per second of ``fn`` answering one batch, best of ``repeats``."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return batch / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="1,28,28", help="C,H,W (AT&T faces: 1,112,92)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    shape = tuple(int(s) for s in args.shape.split(","))
    x = torch.rand(args.batch, *shape)
    ann = build_target(TargetSpec("ann", shape, args.classes))
    snn: SNNTarget = build_target(TargetSpec("snn", shape, args.classes))  # type: ignore[assignment]
    with torch.no_grad():
        snn.fc1.weight.mul_(4)
        snn.fc2.weight.mul_(8)
        steps = snn.spec.timesteps

        def plain() -> torch.Tensor:
            _, mem = snn.run_per_step(spikegen.rate(x.flatten(1), num_steps=steps))
            return mem.softmax(-1).mean(0)

        rates = {
            "ann": per_second(lambda: ann.confidences(x), args.batch, args.repeats),
            "snn fused + fast rate": per_second(lambda: snn.confidences(x), args.batch, args.repeats),
            "snn per-step snntorch + spikegen.rate": per_second(plain, args.batch, args.repeats),
        }
        firing = snn.run(snn.encode(x))[0].mean().item()
    print(f"shape {shape}, batch {args.batch}, T {steps}, threads {torch.get_num_threads()}, "
          f"output firing rate {firing:.2f}")
    for name, rate in rates.items():
        print(f"{name:40s} {rate:10.0f} queries/s  ({1000 * args.batch / rate:7.1f} ms per batch)")
    ratio = rates["snn fused + fast rate"] / rates["snn per-step snntorch + spikegen.rate"]
    print(f"fused / per-step speed-up: {ratio:.2f}x")


if __name__ == "__main__":
    main()
