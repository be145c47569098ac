"""GAMIN against the aggregated global model, through queries only, and what it leaks.

After each configured round the server wraps the global model in a
``QueryOracle`` (inputs in, confidence scores out, queries counted and
capped) and runs GAMIN on it. The evaluator then fills the paper's
ground-truth metrics (held-out test split, a separate unbudgeted oracle) and
the leakage checks the target cannot pass by itself
(``fedsnn.analysis.gamin_scoring``): the judge's verdict on each inverted
sample and its closeness to the training data, beside the same checks on
random probes (floor) and on class means and held-out images (ceilings).
Non-finite global weights stop GAMIN with status "invalid-target".

    gamin.jsonl              one line per (round, class), flushed at once
    gamin/r005-classes.png   per class, inverted samples beside their nearest training image
"""

from __future__ import annotations

import logging
import textwrap
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from attacks.blackbox import GaminResult, invalid_target_reason, oracle_for_classifier, run_gamin  # noqa: E402
from fedsnn.analysis.gamin_scoring import (Leakage, ReferencePools, evaluate_gamin, reference_pools,  # noqa: E402
                                           reference_scores, score_leakage)
from fedsnn.analysis.judges import ModelJudge, load_judge  # noqa: E402
from fedsnn.experiment.config import RunConfig  # noqa: E402
from fedsnn.experiment.federation import dataset_for, model_spec  # noqa: E402
from fedsnn.experiment.runs import RecordLog  # noqa: E402
from fedsnn.experiment.settings import gamin_config  # noqa: E402
from fedsnn.task.models import build_model  # noqa: E402

log = logging.getLogger("fedsnn")
POOL_PER_CLASS = 100  # training images per class the samples are compared with
GRID_SAMPLES = 3


def invert_global_model(cfg: RunConfig, state: dict[str, torch.Tensor], server_round: int, run_dir: Path) -> list[dict]:
    """Run GAMIN on the global model of ``server_round``; never raises (failures are recorded)."""
    records = RecordLog(run_dir / "gamin.jsonl")
    start = time.perf_counter()
    invalid = invalid_target_reason(state)
    if invalid is not None:
        line = {"round": server_round, "model": cfg.model, "status": "invalid-target", "reason": invalid,
                "seconds": round(time.perf_counter() - start, 3)}
        records.append(line)
        log.warning("GAMIN round %d not run: invalid-target (%s)", server_round, invalid)
        return [line]
    try:
        data = dataset_for(cfg)
        spec = model_spec(cfg, data.test)
        config = gamin_config(cfg)
        model = build_model(spec)
        model.load_state_dict(state)
        model.eval().to(config.device)
        classes = cfg.gamin_class_list() or list(range(spec.num_classes))
        attacker = oracle_for_classifier(model, spec.input_shape, spec.num_classes, budget=cfg.gamin_budget * len(classes))
        results = run_gamin(attacker, config, classes, log=log.info)
        evaluator = oracle_for_classifier(model, spec.input_shape, spec.num_classes)
        evaluated = evaluate_gamin(results, data.test, evaluator, seed=cfg.seed, probes=config.probes)
        if data.train.is_event:  # no SSIM or image judge for event frames
            raise ValueError("GAMIN's leakage checks need image data, not event frames")
        judge = _judge(cfg)
        pools = reference_pools(data.train, judge, POOL_PER_CLASS, seed=cfg.seed)
        leaks = [score_leakage(r.samples, r.target_class, judge, pools) for r in evaluated]
        references = reference_scores(pools, judge, data.test, data.train, seed=cfg.seed)
    except Exception as exc:  # noqa: BLE001 - a failed attack is recorded, never crashes the run
        line = {"round": server_round, "model": cfg.model, "status": "failed",
                "reason": f"{type(exc).__name__}: {exc}", "seconds": round(time.perf_counter() - start, 3)}
        records.append(line)
        log.warning("GAMIN round %d failed: %s", server_round, line["reason"])
        return [line]
    lines = [_line(cfg, server_round, r, leak, references, judge) for r, leak in zip(evaluated, leaks)]
    for line in lines:
        records.append(line)
    ok = [(r, leak) for r, leak in zip(evaluated, leaks) if r.status == "ok"]
    if not ok:
        log.warning("GAMIN round %d: %s (%s)", server_round, evaluated[0].status, evaluated[0].reason)
        return lines
    grid = run_dir / "gamin" / f"r{server_round:03d}-classes.png"
    grid.parent.mkdir(exist_ok=True)
    panels = {f"{cfg.model} round {server_round}": {r.target_class: grid_panel(r.samples, leak, pools) for r, leak in ok}}
    plot_leakage_grid(grid, panels, f"GAMIN on the round-{server_round} global model ({cfg.model}, "
                      f"{cfg.gamin_budget:,} queries per class)", GRID_SAMPLES)
    recognised = [leak.summary()["judge_recognised"] for _, leak in ok]
    judged = ("no judge" if recognised[0] is None else
              f"judge-recognised {sum(x['k'] for x in recognised)}/{sum(x['n'] for x in recognised)}")
    closer = [leak.summary()["closer_ssim"] for _, leak in ok]
    log.info("GAMIN round %d on %s: mean A_T %.1f%% (the target's own verdict), %s, closer to own class (SSIM) %d/%d, "
             "mean M_global %.3f (%d classes, %d queries)", server_round, cfg.model,
             np.mean([r.target_accuracy for r, _ in ok]), judged, sum(x["k"] for x in closer),
             sum(x["n"] for x in closer), np.mean([r.m_global for r, _ in ok]), len(ok), attacker.used)
    return lines


def _judge(cfg: RunConfig) -> ModelJudge | None:
    """The run's judge (cached, trained once if judge='auto'), None if disabled or unavailable."""
    if cfg.judge == "none":
        return None
    try:
        return load_judge(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.timesteps, cfg.seed,
                          train_if_missing=cfg.judge == "auto")
    except Exception as exc:  # noqa: BLE001 - no judge means no judge-recognised rate, not a failed attack
        log.warning("GAMIN: no judge for %s (%s): judge-recognised rate not measured", cfg.dataset, type(exc).__name__)
        return None


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _line(cfg: RunConfig, server_round: int, r: GaminResult, leak: Leakage, references: dict[str, list[Leakage]],
          judge: ModelJudge | None) -> dict:
    line = {
        "round": server_round, "model": cfg.model, "dataset": cfg.dataset, "status": r.status, "class": r.target_class,
        "m_global": _finite(r.m_global), "fidelity": _finite(r.fidelity), "surrogate_accuracy": _finite(r.surrogate_accuracy),
        "combined_accuracy": r.combined_accuracy, "target_accuracy": _finite(r.target_accuracy), "queries": r.queries,
        "iterations": r.iterations, "best_iteration": r.best_iteration, "seconds": round(r.wall_time_s, 3),
        "budget_exhausted": r.oracle_exhausted, "config-hash": cfg.digest(),
    }
    if r.status != "ok":
        return {**line, "reason": r.reason}
    summary = leak.summary()
    refs = {name: {m: leaks[r.target_class].summary()[m] for m in ("judge_recognised", "closer_ssim", "closer_feature")}
            for name, leaks in references.items() if r.target_class < len(leaks)}
    return {**line, **summary, "references": refs, "judge": "none" if judge is None else cfg.judge}


def grid_panel(samples: torch.Tensor, leak: Leakage, pools: ReferencePools, k: int = GRID_SAMPLES) -> dict:
    """What ``plot_leakage_grid`` shows for one class: samples, nearest training images, their labels and SSIM."""
    k = min(k, len(samples))
    nearest = torch.as_tensor(leak.nearest[:k])
    return {"samples": samples[:k].detach().cpu(), "nearest": pools.images[nearest],
            "nearest_label": pools.labels[nearest].tolist(),
            "nearest_ssim": [max(float(leak.ssim_own[i]), float(leak.ssim_other[i])) for i in range(k)]}


def _show(ax, image: torch.Tensor) -> None:
    x = image.detach().float().clamp(0, 1)
    ax.imshow(x[0].numpy() if x.shape[0] != 3 else x.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_leakage_grid(path: Path, panels: dict[str, dict[int, dict]], title: str, per_class: int = 1) -> None:
    """Rows = classes; per source, ``per_class`` pairs of columns: inverted sample | nearest training image.

    panels[source][class] = {"samples": [k, C, H, W], "nearest": [k, C, H, W], "nearest_label": [k],
    "nearest_ssim": [k]}. A nearest image of the target class is framed green, of another class red.
    """
    sources = list(panels)
    classes = sorted({c for p in panels.values() for c in p})
    cols = [(s, i, part) for s in sources for i in range(per_class) for part in ("sample", "nearest")]
    width = max(1.15 * len(cols) + 0.6, 4.4)  # wide enough for the title and legend with one source
    fig, axes = plt.subplots(len(classes), len(cols), figsize=(width, 1.2 * len(classes) + 1.4), squeeze=False)
    for row, c in enumerate(classes):
        for j, (source, i, part) in enumerate(cols):
            ax, blob = axes[row][j], panels[source].get(c)
            if blob is None or i >= len(blob["samples"]):
                ax.axis("off")
                continue
            _show(ax, blob["samples"][i] if part == "sample" else blob["nearest"][i])
            if part == "nearest":
                own = blob["nearest_label"][i] == c
                for spine in ax.spines.values():
                    spine.set_edgecolor("green" if own else "red")
                    spine.set_linewidth(2.5)
                ax.set_xlabel(f"{blob['nearest_label'][i]}, SSIM {blob['nearest_ssim'][i]:.2f}", fontsize=6, labelpad=1)
            if row == 0:
                ax.set_title(f"{source}\n{'inverted' if part == 'sample' else 'nearest train'}", fontsize=6)
            if j == 0:
                ax.set_ylabel(f"class {c}", fontsize=7)
    fig.suptitle(textwrap.fill(title, int(width * 11)), fontsize=9)
    fig.legend(handles=[Patch(edgecolor="green", facecolor="none", linewidth=2, label="nearest training image is of the target class"),
                        Patch(edgecolor="red", facecolor="none", linewidth=2, label="nearest training image is of another class")],
               loc="lower center", ncol=2 if width > 8 else 1, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 0.94))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
