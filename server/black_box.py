"""GAMIN against the aggregated global model, through queries only.

After each configured round the server wraps the global model in a
``QueryOracle`` (inputs in, confidence scores out, queries counted and
capped) and runs GAMIN on it. The evaluator then fills the ground-truth
metrics with the held-out test split and a separate, unbudgeted oracle.

    gamin.jsonl              one line per (round, class), flushed at once
    gamin/r005-classes.png   the kept generator's samples, one row per class
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from attacks.blackbox import GaminConfig, GaminResult, run_gamin  # noqa: E402
from attacks.blackbox import oracle_for_classifier  # noqa: E402
from fedsnn.experiment.config import RunConfig  # noqa: E402
from fedsnn.analysis.scoring import evaluate_gamin  # noqa: E402
from fedsnn.experiment.federation import dataset_for, model_spec  # noqa: E402
from fedsnn.task.models import build_model  # noqa: E402
from fedsnn.experiment.runs import RecordLog  # noqa: E402
from fedsnn.experiment.settings import gamin_config  # noqa: E402

log = logging.getLogger("fedsnn")


def invert_global_model(cfg: RunConfig, state: dict[str, torch.Tensor], server_round: int, run_dir: Path) -> list[dict]:
    """Run GAMIN on the global model of ``server_round``; never raises (failures are recorded)."""
    records = RecordLog(run_dir / "gamin.jsonl")
    start = time.perf_counter()
    try:
        test = dataset_for(cfg).test
        spec = model_spec(cfg, test)
        config = gamin_config(cfg)
        model = build_model(spec)
        model.load_state_dict(state)
        model.eval().to(config.device)
        classes = cfg.gamin_class_list() or list(range(spec.num_classes))
        attacker = oracle_for_classifier(model, spec.input_shape, spec.num_classes, budget=cfg.gamin_budget * len(classes))
        results = run_gamin(attacker, config, classes, log=log.info)
        evaluator = oracle_for_classifier(model, spec.input_shape, spec.num_classes)
        evaluated = evaluate_gamin(results, test, evaluator, seed=cfg.seed, probes=config.probes)
    except Exception as exc:  # noqa: BLE001 - a failed attack is recorded, never crashes the run
        line = {"round": server_round, "model": cfg.model, "status": "failed",
                "reason": f"{type(exc).__name__}: {exc}", "seconds": round(time.perf_counter() - start, 3)}
        records.append(line)
        log.warning("GAMIN round %d failed: %s", server_round, line["reason"])
        return [line]
    lines = [_line(cfg, server_round, r) for r in evaluated]
    for line in lines:
        records.append(line)
    grid = run_dir / "gamin" / f"r{server_round:03d}-classes.png"
    grid.parent.mkdir(exist_ok=True)
    save_class_grid(evaluated, grid)
    log.info("GAMIN round %d on %s: mean A_T %.1f%%, mean A_SoG %.1f%%, mean M_global %.3f (%d classes, %d queries)",
             server_round, cfg.model, np.mean([r.target_accuracy for r in evaluated]),
             np.mean([r.combined_accuracy for r in evaluated]), np.mean([r.m_global for r in evaluated]),
             len(evaluated), attacker.used)
    return lines


def _line(cfg: RunConfig, server_round: int, r: GaminResult) -> dict:
    return {
        "round": server_round, "model": cfg.model, "dataset": cfg.dataset, "status": "ok", "class": r.target_class,
        "m_global": r.m_global, "fidelity": r.fidelity, "surrogate_accuracy": r.surrogate_accuracy,
        "combined_accuracy": r.combined_accuracy, "target_accuracy": r.target_accuracy, "queries": r.queries,
        "iterations": r.iterations, "best_iteration": r.best_iteration, "seconds": round(r.wall_time_s, 3),
        "budget_exhausted": r.oracle_exhausted, "config-hash": cfg.digest(),
    }


def save_class_grid(results: list[GaminResult], path: Path, per_class: int = 8) -> None:
    """One row per attacked class: the kept generator's first samples."""
    fig, axes = plt.subplots(len(results), per_class, figsize=(1.1 * per_class, 1.15 * len(results)), squeeze=False)
    for row, r in zip(axes, results):
        for j, ax in enumerate(row):
            ax.axis("off")
            x = r.samples[j].detach().clamp(0, 1)
            ax.imshow(x[0].numpy() if x.shape[0] != 3 else x.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"class {r.target_class}: A_T {r.target_accuracy:.0f}%", fontsize=7, loc="left")
    fig.suptitle(f"GAMIN: {per_class} generated samples per attacked class (rows); A_T = target accuracy on them",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
