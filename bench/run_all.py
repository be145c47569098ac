"""The one bench command: every ratio of issue 6 from one run, appended to bench/results.md.

    python -m bench.run_all [--data-dir DIR] [--victims 64] [--alone 8] [--repeats 3] [--timesteps 20]
                            [--skip-flower] [--quick] [--models lenet,snn-lenet] [--attacks dlg,idlg]
                            [--only-throughput] [--queue 128]

``--data-dir`` is the folder holding MNIST (as the run-config key ``data-dir``);
the default '' uses the MNIST sample shipped in the package, for the victims
of (a) and (b) and for the federation of (c).

(a) batched (``--victims``) vs one-at-a-time (the first ``--alone`` of them) vs
    the plain peer (``bench.peer``, the same ``--alone``) DLG/iDLG on lenet and
    snn-lenet, interleaved over ``--repeats`` (``bench.interleaved``): ratios
    per victim and per victim-evaluation as median [min, max], CPU ms per
    victim-evaluation, success rate and median PSNR on the same victims;
    with ``--queue N`` (N > --victims), instead: N victims through --victims
    slots with continuous batching (refill) vs the same N in fixed batches of
    --victims vs --alone of them one at a time, per victim and per evaluation (one repeat);
(b) SNN-LeNet cost per matching evaluation / (LeNet cost x T);
(c) Flower 10 clients x 5 rounds through ``flwr run`` vs the same training in a
    plain loop, Flower's start-up (first round's 'elapsed-s') reported apart;
(d) GAMIN target queries per second (bench/bench_gamin.py, reused).
(a) and (b) are timed by this thread's CPU clock (``time.thread_time``) on one
torch thread, so that neighbours on shared cores do not move the ratios; (c)
spans processes and stays on the wall clock. The load average is printed with
every run. Each line is printed as soon as it is measured; ``--models``/``--attacks``/
``--only-throughput`` run a part of (a) alone when the whole does not fit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from attacks import AttackConfig, get_attack, reconstruct_many
from attacks.gradient import GradientMatcher
from bench.interleaved import interleaved, quality, timed, victims
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import client_train, global_accuracy_and_loss, initial_model
from fedsnn.launch import launch, toml_overrides
from fedsnn.task.models import ModelSpec

ROOT = Path(__file__).resolve().parents[1]


def queue_ticks(results: list) -> int:
    """Batched evaluations (ticks) of the queues behind ``results``, from the engine's own
    ``diagnostics['queue']`` (each queue's victims are consecutive and share one entry)."""
    total, i = 0, 0
    while i < len(results):
        queue = results[i].diagnostics["queue"]
        total, i = total + queue["ticks"], i + queue["victims"]
    return total


def refill_throughput(model: str, attack: str, args: argparse.Namespace) -> str:
    """``--queue`` victims through ``--victims`` slots: refill vs fixed batches vs alone, in one process.

    Per victim is what a user waits for; per evaluation compares the machinery
    alone. The evaluation totals of refill and fixed can differ: a DLG victim
    that stalls (loss unchanged 5 steps) stops at a step set by rounding, and a
    slot's neighbours change the rounding (plain batches of 4 and 12 differ too).
    """
    spec = ModelSpec(model, (1, 28, 28), 10, timesteps=args.timesteps)
    config = AttackConfig(iterations=args.iterations if model == "lenet" else args.snn_iterations)
    observed, truth = victims(spec, args.queue, args.data_dir)
    runs, times, ticks = {}, {}, {}
    for name, refill in (("refill", True), ("fixed", False)):
        runs[name], times[name], _ = timed(lambda: reconstruct_many(observed, config, attack,
                                                                    max_victims=args.victims, refill=refill))
        ticks[name] = queue_ticks(runs[name])
    alone, times["alone"], _ = timed(lambda: [get_attack(attack)(o, config) for o in observed[:args.alone]])
    rate = {k: (len(alone) if k == "alone" else args.queue) / t for k, t in times.items()}  # victims per CPU second
    evals = {k: sum(r.evaluations for r in (alone if k == "alone" else runs[k])) for k in times}
    cost = {k: times[k] / evals[k] for k in times}  # seconds per victim-evaluation
    max_evals = max(r.evaluations for r in runs["refill"])  # ticks can never be fewer: the critical path
    qr, qf = (quality([r.samples for r in runs[k]], truth) for k in ("refill", "fixed"))
    return (f"(a) {attack} {model}, {args.queue} victims over {args.victims} slots: refill {rate['refill']:.2f}/s "
            f"({times['refill']:.0f} CPU s), fixed batches {rate['fixed']:.2f}/s ({times['fixed']:.0f} CPU s), alone "
            f"{rate['alone']:.2f}/s ({args.alone}) -> refill/fixed {rate['refill'] / rate['fixed']:.2f}x, "
            f"refill/alone {rate['refill'] / rate['alone']:.1f}x, fixed/alone {rate['fixed'] / rate['alone']:.1f}x "
            f"per victim; per evaluation {1e3 * cost['refill']:.2f} / {1e3 * cost['fixed']:.2f} / "
            f"{1e3 * cost['alone']:.2f} ms -> refill/alone {cost['alone'] / cost['refill']:.1f}x, fixed/alone "
            f"{cost['alone'] / cost['fixed']:.1f}x | ticks refill {ticks['refill']}, fixed {ticks['fixed']}, mean "
            f"occupancy {evals['refill'] / ticks['refill'] / args.victims:.0%} vs "
            f"{evals['fixed'] / ticks['fixed'] / args.victims:.0%}, longest victim {max_evals} evaluations | "
            f"evaluations refill {evals['refill']}, fixed {evals['fixed']}; "
            f"success {qr[0]:.0f}% vs {qf[0]:.0f}%, median PSNR {qr[1]:.1f} vs {qf[1]:.1f} dB")


def snn_cost(args: argparse.Namespace) -> str:
    costs = {}
    for name in ("lenet", "snn-lenet"):
        observed, _ = victims(ModelSpec(name, (1, 28, 28), 10, timesteps=args.timesteps), 1, args.data_dir)
        matcher = GradientMatcher(observed[0], AttackConfig())
        x = matcher.layout.initial(torch.Generator().manual_seed(0)).requires_grad_(True)
        probs = matcher.one_hot(torch.tensor([0]))
        best = math.inf
        for _ in range(5):
            best = min(best, timed(lambda: torch.autograd.grad(matcher.loss(x, probs), x))[1])
        costs[name] = best
    ratio = costs["snn-lenet"] / (costs["lenet"] * args.timesteps)
    return (f"(b) SNN-LeNet evaluation (CPU time, best of 5) {1e3 * costs['snn-lenet']:.1f} ms / (LeNet {1e3 * costs['lenet']:.2f} ms"
            f" x T={args.timesteps}) = {ratio:.2f}")


def flower(args: argparse.Namespace) -> str:
    """Rounds 2-5 through ``flwr run`` against the same rounds in a plain loop.

    Round 1 counts as start-up on both sides' terms: Flower starts the
    SuperLink, Ray and ten client processes, each of which loads its data then.
    Both sides evaluate the global model after every round, as the ServerApp does.
    """
    overrides = {"attacks": "none", "gamin-rounds": "none", "judge": "none", "num-rounds": 5, "mode": "fedavg",
                 "local-epochs": 1, "fraction-train": 1.0, "output-dir": "/tmp/fedsnn-bench-runs",
                 **({"data-dir": str(Path(args.data_dir).resolve())} if args.data_dir else {})}
    strings = [toml_overrides(overrides)]
    start = time.perf_counter()
    result = launch(ROOT, strings, "num-supernodes=10 client-resources-num-cpus=1")
    t_flower = time.perf_counter() - start
    rounds = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()] \
        if result.run_dir else []
    elapsed = {r["round"]: r["elapsed-s"] for r in rounds}
    cfg = RunConfig.from_mapping({**tomllib_defaults(), **overrides})
    state = {k: v.detach().clone() for k, v in initial_model(cfg).state_dict().items()}
    finished = {}
    start = time.perf_counter()
    for rnd in range(1, 6):
        updates = [client_train(cfg, state, p, 10, rnd) for p in range(10)]
        total = sum(u.num_examples for u in updates)
        state = {k: sum(u.state[k].float() * (u.num_examples / total) for u in updates).to(v.dtype)
                 for k, v in state.items()}
        global_accuracy_and_loss(cfg, state)
        finished[rnd] = time.perf_counter() - start
    if not {1, 5} <= set(elapsed):
        return f"(c) flwr run {t_flower:.1f} s (status {result.status}; rounds missing), plain loop {finished[5]:.1f} s"
    flwr_rounds, plain_rounds = elapsed[5] - elapsed[1], finished[5] - finished[1]
    return (f"(c) Flower 10 clients x 5 rounds: whole run {t_flower:.1f} s, start-up through round 1 "
            f"{elapsed[1]:.1f} s; rounds 2-5 {flwr_rounds:.1f} s vs plain loop {plain_rounds:.1f} s "
            f"-> {flwr_rounds / plain_rounds:.2f}x")


def tomllib_defaults() -> dict:
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["flwr"]["app"]["config"]


def gamin() -> str:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_gamin.py")], capture_output=True, text=True,
                         cwd=ROOT, timeout=300).stdout.strip().splitlines()
    return "(d) GAMIN " + (out[-1] if out else "bench_gamin.py printed nothing")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="", help="folder holding MNIST; '' = the sample shipped in the package")
    p.add_argument("--victims", type=int, default=64)
    p.add_argument("--alone", type=int, default=8, help="victims also attacked one at a time, and by the peer")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of (a); ratios as median [min, max]")
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--iterations", type=int, default=300, help="L-BFGS steps on lenet")
    p.add_argument("--snn-iterations", type=int, default=10, help="L-BFGS steps on snn-lenet")
    p.add_argument("--skip-flower", action="store_true")
    p.add_argument("--models", default="lenet,snn-lenet", help="models of (a)")
    p.add_argument("--attacks", default="dlg,idlg", help="attacks of (a)")
    p.add_argument("--only-throughput", action="store_true", help="(a) only: no (b), (c), (d)")
    p.add_argument("--queue", type=int, default=0,
                   help="(a) as refill vs fixed batches: this many victims through --victims slots")
    p.add_argument("--quick", action="store_true", help="8 victims, 2 alone, T=4, few steps: a smoke run")
    args = p.parse_args()
    if args.quick:
        args.victims, args.alone, args.timesteps, args.iterations, args.snn_iterations = 8, 2, 4, 20, 3
    # every ratio is CPU time of this one thread: torch must not spread work over others
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    for m in args.models.split(","):
        for a in args.attacks.split(","):
            for line in [refill_throughput(m, a, args)] if args.queue > args.victims else interleaved(m, a, args):
                emit(line)
    if not args.only_throughput:
        emit(snn_cost(args))
        if not args.skip_flower:
            emit(flower(args))
        emit(gamin())
    load = os.getloadavg()
    head = (f"## {datetime.datetime.now():%Y-%m-%d %H:%M} - {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, torch {torch.__version__}, 1 thread, load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    block = "\n".join([head, f"`python -m bench.run_all {' '.join(sys.argv[1:])}`", "", *[f"- {line}" for line in lines]])
    print(block)
    with open(ROOT / "bench" / "results.md", "a") as f:
        f.write(block + "\n\n")


if __name__ == "__main__":
    main()
