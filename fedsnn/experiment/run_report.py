"""``report.md``: the page of a run folder a person reads first.

Built only from what the run wrote (config.json, metrics.jsonl, leakage.jsonl,
reconstructions/, gamin.jsonl, gamin/, interrupted.json), so it can be written
at any time: by the ServerApp when the run ends, by ``fedsnn-run`` when it
interrupts a run, or by hand: ``python -m fedsnn.experiment.run_report RUN_DIR``.

    report.md                 status, accuracy per round, leakage per round and attack
                              beside its controls, reconstruction and GAMIN grids, config
    report/rNNN-ATTACK.png    originals (top row) and reconstructions (bottom row)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fedsnn.analysis import stats  # noqa: E402
from fedsnn.experiment.health import short_reason, training_failure  # noqa: E402
from fedsnn.experiment.reporting import _displayable, leakage_by_round  # noqa: E402
from fedsnn.experiment.runs import read_jsonl  # noqa: E402

GRID_COLUMNS = 8


def write_run_report(run_dir: Path) -> Path:
    """(Re)write ``run_dir/report.md`` from the folder's records; never raises on partial folders."""
    run_dir = Path(run_dir)
    config = _read_json(run_dir / "config.json")
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    sections = [
        f"# Run `{run_dir.name}`\n", status_line(run_dir, metrics) + "\n",
        "## Global model, per round\n", accuracy_table(metrics),
        "## Leakage per round and attack\n", leakage_table(run_dir),
        "## Reconstructions of the attacked rounds\n", reconstruction_grids(run_dir),
        "## GAMIN (black-box inversion of the global model)\n", gamin_section(run_dir),
        "## Configuration\n", config_table(config),
    ]
    path = run_dir / "report.md"
    path.write_text("\n".join(sections))
    return path


def status_line(run_dir: Path, metrics: list[dict[str, Any]]) -> str:
    """Finished, interrupted or failed, with the training verdict."""
    finished = [r["round"] for r in metrics if r.get("round", 0) >= 1]
    interrupted = _read_json(run_dir / "interrupted.json")
    verdict = training_failure(metrics)
    if interrupted:
        state = (f"**Interrupted** by {interrupted.get('signal', 'a signal')} at {interrupted.get('at', '?')}; "
                 f"rounds finished: {max(finished) if finished else 0} of {interrupted.get('num-rounds', '?')}.")
    elif (run_dir / "global_model.pt").exists():
        state = f"**Finished**: {max(finished) if finished else 0} rounds."
    else:
        state = f"**Incomplete**: {max(finished) if finished else 0} rounds recorded, no final model."
    return state + (f" **Training failed**: {verdict}." if verdict else "")


def accuracy_table(metrics: list[dict[str, Any]]) -> str:
    rows = ["| round | test accuracy | test loss | mean train loss | clients trained | clients failed | first failure |",
            "|---|---|---|---|---|---|---|"]
    for r in metrics:
        failed = r.get("clients-failed", [])
        first = short_reason(failed[0]["reason"], 80) if failed else ""
        rows.append(f"| {r['round']} | {_fmt(r.get('test-accuracy'))} | {_fmt(r.get('test-loss'))} | "
                    f"{_fmt(r.get('train-loss'))} | {r.get('clients-ok', '')} | {len(failed)} | {first} |")
    return "\n".join(rows) + "\n" if metrics else "No round finished.\n"


def leakage_table(run_dir: Path) -> str:
    """Median PSNR/SSIM, success and ASR per (round, attack), with each control beside it
    (controls and gains are read from leakage.jsonl where the evaluator records them)."""
    rows = leakage_by_round(run_dir)
    if not rows:
        return "No attack ran.\n"
    controls = _controls_by_round(run_dir)
    lines = ["| round | attack | model | samples | success % | median PSNR (dB) | median SSIM | ASR % | controls | gains |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ctrl, gain = controls.get((r["round"], r["attack"]), ("none recorded", ""))
        lines.append(f"| {r['round']} | {r['attack']} | {r['model']} | {r['samples']} | {_percent(r['success'])} | "
                     f"{_fmt(r['psnr'])} | {_fmt(r['ssim'])} | {_percent(r['asr'])} | {ctrl} | {gain} |")
    aggregates = sorted({tuple(line.get("partitions", [])) for line in read_jsonl(run_dir / "leakage.jsonl")
                         if line.get("partition") == "aggregate"})
    note = (f"\nSecure aggregation: each row attacks the round's aggregate of partitions "
            f"{', '.join(str(list(a)) for a in aggregates)}, the only update the server saw, scored against the "
            "union of their batches.\n") if aggregates else ""
    return "\n".join(lines) + "\n" + note


def _controls_by_round(run_dir: Path) -> dict[tuple[int, str], tuple[str, str]]:
    """{(round, attack): (controls text, gains text)} from the lines' optional 'controls'/'gains-over-label-only' fields."""
    pooled: dict[tuple[int, str], tuple[dict[str, list[dict]], list[dict]]] = {}
    for line in read_jsonl(run_dir / "leakage.jsonl"):
        controls, gains = pooled.setdefault((line["round"], line["attack"]), ({}, []))
        for name, value in (line.get("controls") or {}).items():
            controls.setdefault(name, []).extend(_sample_dicts(value))
        gains.extend(_sample_dicts(line.get("gains-over-label-only") or []))
    out = {}
    for key, (controls, gains) in pooled.items():
        text = "; ".join(f"{name}: PSNR {_fmt(_median(s, 'psnr'))}, SSIM {_fmt(_median(s, 'ssim'))}"
                         for name, s in sorted(controls.items())) or "none recorded"
        numeric = sorted({k for g in gains for k, v in g.items() if isinstance(v, (int, float))})
        out[key] = (text, ", ".join(f"{k} {_fmt(_median(gains, k))}" for k in numeric))
    return out


def _sample_dicts(value: Any) -> list[dict]:
    """A control as the evaluator may write it: a list of per-sample dicts, or {'samples': [...]}, or a summary."""
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    if isinstance(value, dict):
        return _sample_dicts(value["samples"]) if "samples" in value else [value]
    return []


def reconstruction_grids(run_dir: Path) -> str:
    """One picture per attacked round and attack: originals over reconstructions."""
    files = sorted((run_dir / "reconstructions").glob("r*-p*-*.pt"))
    groups: dict[tuple[str, str], list[Path]] = {}
    for f in files:
        rnd, _partition, attack = f.stem.split("-", 2)
        groups.setdefault((rnd, attack), []).append(f)
    lines = []
    for (rnd, attack), paths in sorted(groups.items()):
        out = run_dir / "report" / f"{rnd}-{attack}.png"
        if _save_grid(paths, out, f"round {int(rnd[1:])}, {attack}: originals (top) and reconstructions (bottom)"):
            lines.append(f"![round {int(rnd[1:])} {attack}](report/{out.name})\n")
    return "\n".join(lines) if lines else "No reconstruction was saved.\n"


def _save_grid(paths: list[Path], out: Path, title: str) -> bool:
    originals, rebuilt, captions = [], [], []
    for path in paths:
        saved = torch.load(path, weights_only=True)
        for k in range(len(saved["reconstruction"])):
            originals.append(saved["original"][k])
            rebuilt.append(saved["reconstruction"][k])
            captions.append(f"{path.stem.split('-')[1]} #{k}")
    originals, rebuilt = originals[:GRID_COLUMNS], rebuilt[:GRID_COLUMNS]
    if not originals:
        return False
    out.parent.mkdir(exist_ok=True)
    fig, axes = plt.subplots(2, len(originals), figsize=(1.3 * len(originals), 3.0), squeeze=False)
    for j, (orig, rec) in enumerate(zip(originals, rebuilt)):
        for i, image in enumerate((orig, rec)):
            axes[i][j].imshow(_displayable(image.detach().cpu()), cmap="gray", vmin=0, vmax=1)
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
        axes[0][j].set_title(captions[j], fontsize=7)
    axes[0][0].set_ylabel("original", fontsize=8)
    axes[1][0].set_ylabel("reconstruction", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def gamin_section(run_dir: Path) -> str:
    lines = read_jsonl(run_dir / "gamin.jsonl")
    if not lines:
        return "GAMIN did not run.\n"
    rows = ["| round | class | status | A_T % | A_SoG % | M_global | queries |", "|---|---|---|---|---|---|---|"]
    for g in lines:
        status = g.get("status", "")
        if g.get("reason"):
            status += f" ({short_reason(g['reason'], 80)})"
        rows.append(f"| {g.get('round')} | {g.get('class', '')} | {status} | {_fmt(g.get('target_accuracy'))} | "
                    f"{_fmt(g.get('combined_accuracy'))} | {_fmt(g.get('m_global'))} | {g.get('queries', '')} |")
    grids = [f"![GAMIN {p.stem}](gamin/{p.name})\n" for p in sorted((run_dir / "gamin").glob("*.png"))]
    return "\n".join(rows) + "\n\n" + "\n".join(grids)


def config_table(config: dict[str, Any] | None) -> str:
    if not config:
        return "config.json is missing.\n"
    rows = ["| key | value |", "|---|---|"]
    rows += [f"| `{k}` | `{v}` |" for k, v in sorted(config.get("run-config", {}).items())]
    for key in ("config-hash", "git-commit", "git-dirty", "code_version", "ray", "created_utc"):
        if key in config:
            rows.append(f"| {key} | `{json.dumps(config[key])}` |")
    versions = config.get("versions", {})
    rows.append("| versions | " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if k != "platform") + " |")
    return "\n".join(rows) + "\n"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _median(samples: list[dict], key: str) -> float | None:
    values = [s[key] for s in samples if isinstance(s.get(key), (int, float)) and np.isfinite(s[key])]
    return float(np.median(values)) if values else None


def _percent(rate: Any) -> str:
    """A rate (an Interval of a fraction) in percent, with its interval."""
    return rate.format(".0f", scale=100) if isinstance(rate, stats.Interval) else _fmt(rate)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write RUN_DIR/report.md from the run's records")
    parser.add_argument("run_dir", type=Path)
    print(write_run_report(parser.parse_args().run_dir))
