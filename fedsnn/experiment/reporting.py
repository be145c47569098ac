"""Tables, plots and image grids from run folders: ANN and SNN fleets side by side.

Reads only what runs wrote (metrics.jsonl, leakage.jsonl, reconstructions/),
so a report can be rebuilt at any time: ``python -m fedsnn.experiment.reporting RUN_DIR...``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import torch  # noqa: E402

from fedsnn.analysis import stats  # noqa: E402
from fedsnn.experiment.runs import read_jsonl  # noqa: E402

METRICS = (("psnr", "median PSNR (dB)"), ("ssim", "median SSIM"), ("asr", "ASR (%)"))
COLUMNS = ("model", "round", "attack", "attacks", "failed", "samples", "success", "psnr", "ssim", "gain-ssim",
           "gain-psnr", "asr", "asr-floor", "label-acc", "label-multiset", "seconds", "test-accuracy")
FORMATS = {"success": (".0f", 100), "asr": (".0f", 100), "asr-floor": (".0f", 100), "label-acc": (".0f", 100),
           "label-multiset": (".0f", 100), "psnr": (".1f", 1), "ssim": (".3f", 1), "gain-ssim": ("+.3f", 1),
           "gain-psnr": ("+.1f", 1)}


def leakage_by_round(run_dir: Path) -> list[dict[str, Any]]:
    """One row per (round, attack): pooled per-sample metrics of every attacked client, with 95% intervals.

    Rates carry Wilson intervals, medians percentile-bootstrap ones
    (``fedsnn.analysis.stats``). 'label-acc' compares labels after pixel
    matching; 'label-multiset' counts the true labels recovered in any order
    (what label inference leaks). Gains over the label-only guess and the
    ASR floor need the controls, which lines written before them lack (n/a).
    """
    accuracy = {r["round"]: r["test-accuracy"] for r in read_jsonl(run_dir / "metrics.jsonl")}
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for line in read_jsonl(run_dir / "leakage.jsonl"):
        groups.setdefault((line["round"], line["attack"]), []).append(line)
    rows = []
    for (rnd, attack), lines in sorted(groups.items()):
        samples = [s for line in lines for s in line.get("samples", [])]
        gains = [g for line in lines for g in line.get("gains-over-label-only", [])]
        floor = [s["judge_correct"] for line in lines
                 for s in line.get("controls", {}).get("label_only", {}).get("samples", [])]
        recovered = [multiset_hits(line) for line in lines if line.get("samples")]
        rows.append({
            "round": rnd, "attack": attack, "model": lines[0]["model"], "attacks": len(lines),
            "failed": sum(line["status"] in ("failed", "diverged") for line in lines), "samples": len(samples),
            "success": stats.rate([s["success"] for s in samples]),
            "psnr": stats.median([s["psnr"] for s in samples]), "ssim": stats.median([s["ssim"] for s in samples]),
            "gain-ssim": stats.median([g["ssim"] for g in gains]), "gain-psnr": stats.median([g["psnr"] for g in gains]),
            "asr": stats.rate([s["judge_correct"] for s in samples]), "asr-floor": stats.rate(floor),
            "label-acc": stats.rate([s["label_correct"] for s in samples]),
            "label-multiset": stats.wilson(sum(k for k, _ in recovered), sum(n for _, n in recovered)),
            "seconds": float(np.mean([line["seconds"] for line in lines])), "test-accuracy": accuracy.get(rnd),
        })
    return rows


def multiset_hits(line: dict[str, Any]) -> tuple[int, int]:
    """(true labels recovered as a multiset, labels rebuilt) for one leakage line."""
    k = len(line["samples"])
    inferred, true = line.get("inferred-labels", [])[:k], line.get("true-labels", [])
    return sum((Counter(inferred) & Counter(true)).values()), k


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "".join("| " + " | ".join(_fmt(r[c], c) for c in COLUMNS) + " |\n" for r in rows)


def plot_fleets(rows_by_model: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Leakage against round, every fleet on one axis; one panel per metric."""
    attacks = sorted({r["attack"] for rows in rows_by_model.values() for r in rows})
    fig, axes = plt.subplots(1, len(METRICS) + 1, figsize=(4.2 * (len(METRICS) + 1), 3.4))
    for model, rows in rows_by_model.items():
        for attack in attacks:
            mine = [r for r in rows if r["attack"] == attack]
            for ax, (key, label) in zip(axes, METRICS):
                ax.plot([r["round"] for r in mine], [_value(r[key], key) for r in mine],
                        marker="o", label=f"{model} {attack}")
                ax.set(xlabel="round", ylabel=label)
        acc = sorted({(r["round"], r["test-accuracy"]) for r in rows if r["test-accuracy"] is not None})
        axes[-1].plot([a for a, _ in acc], [b for _, b in acc], marker="s", label=model)
    axes[-1].set(xlabel="round", ylabel="global test accuracy")
    for ax, title in zip(axes, [label for _, label in METRICS] + ["global test accuracy"]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds are whole numbers
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("leakage and accuracy against round, per fleet and attack", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grid_for_round(run_dirs: dict[str, Path], server_round: int, attack: str, path: Path, max_cols: int = 8) -> bool:
    """original | each fleet's reconstruction of the same samples, for one round and attack."""
    files = {m: sorted((d / "reconstructions").glob(f"r{server_round:03d}-p*-{attack}.pt")) for m, d in run_dirs.items()}
    first_fleet = next((fs for fs in files.values() if fs), None)
    if first_fleet is None:
        return False
    reference = torch.cat([torch.load(f)["original"] for f in first_fleet])[:max_cols]
    rows = [("original", reference)]
    for model, fs in files.items():
        rows.append((model, _aligned(reference, [torch.load(f) for f in fs])))
    fig, axes = plt.subplots(len(rows), len(reference), figsize=(1.3 * len(reference), 1.4 * len(rows)), squeeze=False)
    for i, (name, images) in enumerate(rows):
        for j in range(len(reference)):
            ax = axes[i][j]
            ax.axis("off")
            if images[j] is not None:
                ax.imshow(_displayable(images[j]), cmap="gray", vmin=0, vmax=1)
        axes[i][0].set_title(name, fontsize=8, loc="left")
    fig.suptitle(f"round {server_round}, {attack}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _aligned(reference: torch.Tensor, saved: list[dict[str, torch.Tensor]]) -> list[torch.Tensor | None]:
    """For each reference original, this fleet's reconstruction of the same sample (or None)."""
    out: list[torch.Tensor | None] = []
    for original in reference:
        found = None
        for item in saved:
            for k, candidate in enumerate(item["original"]):
                if torch.equal(candidate, original):
                    found = item["reconstruction"][k]
        out.append(found)
    return out


def _displayable(x: torch.Tensor) -> np.ndarray:
    """[C, H, W] image or [T, C, H, W] spikes -> [H, W(, 3)] in [0, 1]."""
    if x.dim() == 4:
        x = x.mean(0)
    x = x.clamp(0, 1)
    return x[0].numpy() if x.shape[0] != 3 else x.permute(1, 2, 0).numpy()


def compare(run_dirs: dict[str, Path], out: Path) -> Path:
    """Write report.md, leakage.png and per-round grids comparing the fleets into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = {model: leakage_by_round(d) for model, d in run_dirs.items()}
    plot_fleets(rows, out / "leakage.png")
    lines = ["# Fleet comparison\n", "Runs: " + ", ".join(f"`{m}`: `{d}`" for m, d in run_dirs.items()) + "\n",
             "Leakage pooled over attacked clients per round (median over samples; success = MSE < 1e-3; "
             "ASR = judge accuracy on reconstructions; asr-floor = the judge on the label-only guess; gains = "
             "attack minus label-only guess, per sample). Every figure is `value [95% interval]`: Wilson for "
             "rates, percentile bootstrap (2,000 resamples) for medians; the samples of one round are not "
             "independent draws of many clients, so read the intervals as lower bounds on the uncertainty.\n", "![leakage against round](leakage.png)\n"]
    legacy = [m for m, d in run_dirs.items() if any("ssim_uniform7" not in s for line in read_jsonl(d / "leakage.jsonl")
                                                    for s in line.get("samples", []))]
    if legacy:
        lines.append(f"Runs {legacy} were recorded before the controls and Wang's SSIM: their 'ssim' is scikit-image's "
                     "uniform 7x7 window and their gains and ASR floor are n/a (rerun to get them).\n")
    for model, model_rows in rows.items():
        lines += [f"## {model}\n", markdown_table(model_rows)]
    lines.append("## Privacy against utility (last round)\n")
    lines.append("| model | final test accuracy | success % | median PSNR | median SSIM | SSIM gain over label-only "
                 "| ASR % (label-only floor) | label acc (matched / multiset) |\n|---|---|---|---|---|---|---|---|")
    for model, model_rows in rows.items():
        if model_rows:
            last = max(r["round"] for r in model_rows)
            for r in (r for r in model_rows if r["round"] == last):
                lines.append(f"| {model} ({r['attack']}) | {_fmt(r['test-accuracy'])} | {_fmt(r['success'], 'success')} | "
                             f"{_fmt(r['psnr'], 'psnr')} | {_fmt(r['ssim'], 'ssim')} | {_fmt(r['gain-ssim'], 'gain-ssim')} | "
                             f"{_fmt(r['asr'], 'asr')} ({_fmt(r['asr-floor'], 'asr-floor')}) | "
                             f"{_fmt(r['label-acc'], 'label-acc')} / {_fmt(r['label-multiset'], 'label-multiset')} |")
    lines.append("\n## Reconstructions\n")
    rounds_attacks = sorted({(r["round"], r["attack"]) for rs in rows.values() for r in rs})
    for rnd, attack in rounds_attacks:
        name = f"grid-r{rnd:03d}-{attack}.png"
        if grid_for_round(run_dirs, rnd, attack, out / name) or (out / name).exists():  # kept from the run
            lines.append(f"![round {rnd} {attack}]({name})\n")
    (out / "report.md").write_text("\n".join(lines))
    (out / "runs.json").write_text(json.dumps({m: str(d) for m, d in run_dirs.items()}, indent=2))
    return out / "report.md"


def _value(value: Any, key: str) -> float:
    """A plotted number: an interval's point (rates in %), NaN when absent."""
    if isinstance(value, stats.Interval):
        return value.value * FORMATS.get(key, ("", 1))[1]
    return np.nan if value is None else value


def _fmt(value: Any, key: str = "") -> str:
    if isinstance(value, stats.Interval):
        spec, scale = FORMATS.get(key, (".3g", 1))
        return value.format(spec, scale)
    if value is None:
        return "n/a"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Compare fleets: python -m fedsnn.experiment.reporting OUT RUN_DIR [RUN_DIR ...]")
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    dirs = {json.loads((d / "config.json").read_text())["run-config"]["model"]: d for d in args.runs}
    print(compare(dirs, args.out))


if __name__ == "__main__":
    main()
