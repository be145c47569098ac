"""Privacy-utility of each defense for ANN and SNN fleets on real MNIST.

    python -m simulations.defenses --data-dir /work/shared/data --out simulations/results/defenses

Every point (defense, strength, fleet, seed) is two small federations run
in-process through the real ServerApp and ClientApp (``server.inprocess_grid``;
Flower's DP wrappers and mods, the curious server, the evaluator), with the
same seed, partitions and clients for both fleets:

- utility: short FedAvg (``UTILITY``: 2 clients, R rounds of a few local
  steps), attacks off; the global test accuracy after R rounds and the
  epsilon spent;
- leakage: one FedSGD round on a batch of 4 (``LEAKAGE``: the setting in
  which gradient inversion is known to work), both clients attacked by the
  registry's attacks (``--attacks``); leakage.jsonl as the evaluator wrote
  it (every field it has: per-sample scores, summary, controls, intervals).

Both are needed because the CPU budget allows neither enough FedSGD rounds
to train nor an attack on multi-step FedAvg updates that leaks without a
defense. Utility: 5 rounds of 80 local steps (batch 16, lr 0.25) is where the
sigmoid LeNet under the attack papers' U(-0.5, 0.5) init gets past its plateau
(probe, undefended, seeds 0-2: 0.74-0.89 on 300 test digits; 40 steps gave 0.21);
SNN-LeNet reaches ~0.9. To fit the budget: SNN-LeNet runs T=8 timesteps (the
app's default is 20), both clients' round-1 updates are attacked (4 digits
each, 8 per seed), iDLG gets 30 L-BFGS iterations (the time budget is only a guard),
and the learned attack keeps its defaults (5000 auxiliary samples, 30 epochs,
width 1024): its decoder depends only on the round-1 global weights and the
declared training, the same at every defense for a (fleet, seed), so the
process trains it once per (fleet, seed) and reuses it (``reused`` in its
diagnostics). dp-server-fixed is not
swept: the curious server sees the same clipped updates and the model gets
the same noise as under dp-client-fixed; only where clipping runs differs. Clipping norms are set per fleet and phase at the
median norm of that phase's undefended updates (round 1), so noise-to-signal
is comparable across phases and fleets (dp-sgd clips per-sample gradients:
one C for all). Records go to ``records.jsonl`` as each point ends; a
rerun skips finished points. ``--report-only`` rebuilds the report
(``simulations.defenses_report``).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from statistics import median

import torch

from clients.client_app import app as client_app
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import client_train, initial_model, sample_partitions
from fedsnn.experiment.runs import RecordLog, read_jsonl
from fedsnn.task.defenses import global_norm, update_between
from server.inprocess_grid import run_in_process
from server.server_app import main as server_main
from simulations.defenses_report import write_report

FLEETS = ("lenet", "snn-lenet")
NUM_CLIENTS = 2
COMMON = {"dataset": "mnist", "eval-samples": 1000, "judge": "cached", "gamin-rounds": "none", "lr": 0.25, "timesteps": 8}
UTILITY = {"mode": "fedavg", "local-steps": 80, "batch-size": 16, "num-rounds": 5, "attacks": "none"}
LEAKAGE = {"mode": "fedsgd", "batch-size": 4, "num-rounds": 1, "attack-rounds": "all", "attack-samples": 0,
           "attack-clients": 0, "attack-iterations": 30, "attack-time-budget": 300.0}
# defense -> (run-config key swept, strengths from weak to strong)
SWEEP: dict[str, tuple[str, tuple[float, ...]]] = {
    "dp-client-fixed": ("noise-multiplier", (0.01, 0.1, 0.3, 1.0)),
    "local-dp": ("ldp-epsilon", (1000.0, 300.0, 100.0, 30.0)),
    "dp-sgd": ("noise-multiplier", (0.01, 0.1, 0.3, 1.0)),
    "topk": ("topk-fraction", (0.5, 0.2, 0.05, 0.01)),
    "quantize": ("quant-bits", (8, 4, 2, 1)),
}
CLIPPED_UPDATES = ("dp-client-fixed", "local-dp")  # clip-norm bounds the whole update
DP_SGD_CLIP = 1.0  # per-sample gradient norm bound


def points(seeds: list[int], chosen_seeds: list[int], chosen: dict[str, int]) -> list[tuple[str, float | None, str, int]]:
    """(defense, strength, fleet, seed): every strength at seeds, the chosen strength also at chosen_seeds."""
    out = []
    for seed in sorted(set(seeds) | set(chosen_seeds)):  # the full sweep first, extra seeds after
        out += [("none", None, fleet, seed) for fleet in FLEETS]
        for i in _weak_strong_first(len(next(iter(SWEEP.values()))[1])):  # every defense's extremes first
            for defense, (_, strengths) in SWEEP.items():
                if seed in seeds or (seed in chosen_seeds and i == chosen[defense]):
                    out += [(defense, strengths[i], fleet, seed) for fleet in FLEETS]  # both fleets together
    return out


def _weak_strong_first(n: int) -> list[int]:
    """Strength indices weakest, strongest, then the middle ones: a cut-short sweep still spans the range."""
    return [0, n - 1, *range(1, n - 1)]


def point_id(defense: str, strength: float | None, fleet: str, seed: int) -> str:
    return f"{defense}-{strength}-{fleet}-s{seed}"


def median_update_norm(run_config: dict) -> float:
    """Median L2 norm of the undefended round-1 updates of the clients sampled in round 1."""
    cfg = RunConfig.from_mapping({**run_config, "defense": "none", "attacks": "none"})
    state = initial_model(cfg).state_dict()
    norms = []
    for p in sample_partitions(cfg, 1, list(range(NUM_CLIENTS))):
        update = client_train(cfg, state, p, NUM_CLIENTS, 1)
        norms.append(global_norm(update_between(state, update.state)))
    return float(median(norms))


def phase_config(base: dict, phase: dict, defense: str, strength: float | None, out: Path) -> dict:
    config = {**base, **phase, "defense": defense, "output-dir": str(out)}
    if defense in SWEEP:
        key, _ = SWEEP[defense]
        config[key] = int(strength) if key == "quant-bits" else float(strength)
    if defense in CLIPPED_UPDATES:
        config["clip-norm"] = median_update_norm({**base, **phase})
    elif defense == "dp-sgd":
        config["clip-norm"] = DP_SGD_CLIP
    return config


def run_phase(config: dict) -> Path:
    """One federation in-process; its run folder."""
    before = set(Path(config["output-dir"]).glob("*")) if Path(config["output-dir"]).exists() else set()
    RunConfig.from_mapping(config)  # bad settings stop here, before any training
    run_in_process(server_main, client_app, config, NUM_CLIENTS)
    (run_dir,) = set(Path(config["output-dir"]).glob("*")) - before
    return run_dir


def run_point(defense: str, strength: float | None, fleet: str, seed: int, data_dir: str, attacks: str, out: Path) -> dict:
    base = {**COMMON, "data-dir": data_dir, "model": fleet, "seed": seed, "attacks": attacks,
            "name": point_id(defense, strength, fleet, seed)}
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    utility_cfg = phase_config(base, UTILITY, defense, strength, out / "runs" / "utility")
    leakage_cfg = phase_config(base, LEAKAGE, defense, strength, out / "runs" / "leakage")
    utility_dir, leakage_dir = run_phase(utility_cfg), run_phase(leakage_cfg)
    rounds = read_jsonl(utility_dir / "metrics.jsonl")
    return {
        "point": point_id(defense, strength, fleet, seed), "defense": defense,
        "key": SWEEP[defense][0] if defense in SWEEP else None, "strength": strength, "fleet": fleet, "seed": seed,
        "clip-norm-utility": utility_cfg.get("clip-norm"), "clip-norm-leakage": leakage_cfg.get("clip-norm"),
        "accuracy": rounds[-1]["test-accuracy"], "accuracy-by-round": [r["test-accuracy"] for r in rounds],
        "epsilon": rounds[-1].get("epsilon"), "epsilon-by-round": [r.get("epsilon") for r in rounds],
        "delta": rounds[-1].get("delta"), "dp-unit": rounds[-1].get("dp-unit"),
        "leakage": read_jsonl(leakage_dir / "leakage.jsonl"),
        "utility-run": str(utility_dir.relative_to(out)), "leakage-run": str(leakage_dir.relative_to(out)),
        "cpu-s": round(time.process_time() - start_cpu, 1), "wall-s": round(time.perf_counter() - start_wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--attacks", default="idlg,learned", help="registry attacks run on every leakage update")
    parser.add_argument("--seeds", default="0", help="seeds of the full sweep")
    parser.add_argument("--chosen-seeds", default="0,1,2", help="seeds of the chosen strengths (and no defense)")
    parser.add_argument("--chosen", default="dp-client-fixed=0,local-dp=1,dp-sgd=0,topk=2,quantize=2",
                        help="index of the chosen strength per defense")
    parser.add_argument("--only", default="", help="comma-separated defenses (and 'none') to run; '' = all")
    parser.add_argument("--fleets", default=",".join(FLEETS))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    records = RecordLog(args.out / "records.jsonl")
    if not args.report_only:
        chosen = {k: int(v) for k, v in (item.split("=") for item in args.chosen.split(","))}
        done = {r["point"] for r in read_jsonl(args.out / "records.jsonl")} if (args.out / "records.jsonl").exists() else set()
        only = {d for d in args.only.split(",") if d}
        todo = [p for p in points(_ints(args.seeds), _ints(args.chosen_seeds), chosen)
                if point_id(*p) not in done and (not only or p[0] in only) and p[2] in args.fleets.split(",")]
        for i, (defense, strength, fleet, seed) in enumerate(todo, 1):
            record = run_point(defense, strength, fleet, seed, args.data_dir, args.attacks, args.out)
            records.append(record)
            print(f"[{i}/{len(todo)}] {record['point']}: accuracy {record['accuracy']:.3f}, "
                  f"epsilon {record['epsilon']}, cpu {record['cpu-s']} s", flush=True)
    print(f"report: {write_report(args.out)}")
    return 0


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


if __name__ == "__main__":
    raise SystemExit(main())
