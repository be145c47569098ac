"""Tables V and VI beside the paper's, with 95% intervals, from the records ``simulations.table5_6`` writes.

One results folder per data source (``nmnist/``, ``dvs-cuts/``, ``synthetic/``
under ``simulations/results/table5_6``) gets its table5_6.md and thresholds.png;
the root gets one table5_6.md with every source, real recordings first::

    python -m simulations.table5_6_report simulations/results/table5_6

Intervals (``simulations.intervals``): Wilson for ASR, percentile bootstrap for
mean l2. Table VI's bootstrap resamples pairs, which share samples: read that
interval as a lower bound on the uncertainty.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from attacks.gradient import ALGORITHMS, TAUS
from fedsnn.experiment.runs import read_jsonl
from fedsnn.task.data import LabelledData
from simulations.intervals import bootstrap, mean_cell, rate_cell, wilson

PAPER_V = {  # (attack, tau) -> (post ASR %, post l2, in ASR %, in l2); DVS128 Gesture, 2x128x128, T = 20
    ("dlg", 0.1): (9.41, 504.03, 9.60, 457.26), ("idlg", 0.1): (9.19, 508.09, 9.60, 457.28),
    ("dlg", 0.25): (7.67, 257.75, 7.10, 100.17), ("idlg", 0.25): (8.54, 270.65, 7.80, 100.19),
    ("dlg", 0.5): (8.04, 127.36, 8.50, 42.57), ("idlg", 0.5): (8.29, 130.44, 8.50, 42.57),
    ("dlg", 0.75): (9.41, 87.52, 8.50, 42.56), ("idlg", 0.75): (9.65, 85.45, 8.50, 42.56),
    ("dlg", 0.9): (8.54, 75.47, 8.50, 42.56), ("idlg", 0.9): (10.64, 72.33, 8.50, 42.56),
    ("dlg", 0.95): (8.42, 72.50, 8.50, 42.56), ("idlg", 0.95): (10.52, 69.21, 8.50, 42.56),
}
PAPER_VI = {"intra": (60.34, 13.80, 0.00, 106.64), "inter": (60.80, 11.51, 14.93, 105.15)}  # mean, std, min, max
HEADINGS = {
    "nmnist": "N-MNIST (real recordings)",
    "dvs128-gesture": "DVS128 Gesture (real recordings)",
    "dvs128-gesture-cuts": "DVS128 Gesture cuts (real recordings, labels INFERRED)",
    "synthetic": "SYNTHETIC event data (synthetic_gestures): NOT comparable to the paper",
}
ORDER = ("nmnist", "dvs128-gesture", "dvs128-gesture-cuts", "synthetic")


def pairwise_l2(data: LabelledData, per_class: int) -> dict[str, dict[str, float | None]]:
    """Table VI: l2 between distinct samples, same class (intra) vs different classes (inter).

    Uses the first ``per_class`` samples of each class; self-pairs are excluded.
    'to_empty' is each sample's own norm, the l2 of an all-zero (silent)
    reconstruction: a binarised dummy with no spike left scores exactly this.
    """
    keep = torch.cat([torch.nonzero(data.labels == c).flatten()[:per_class] for c in range(data.num_classes)])
    x, y = data.samples[keep].flatten(1).double(), data.labels[keep]
    dist = torch.cdist(x, x)
    upper = torch.triu(torch.ones_like(dist, dtype=torch.bool), diagonal=1)
    same = y[:, None] == y[None, :]
    out = {name: _stats(dist[mask]) for name, mask in (("intra", upper & same), ("inter", upper & ~same))}
    out["to_empty"] = _stats(x.norm(dim=1))  # l2 of an all-zero reconstruction: ||x||
    out["samples"] = {"count": len(keep), "per_class": per_class}
    return out


def _stats(d: torch.Tensor) -> dict[str, float | None]:
    if d.numel() == 0:  # e.g. intra-class pairs when each class has one sample
        return {"mean": None, "std": None, "min": None, "max": None, "pairs": 0, "mean_ci": [None, None]}
    values = d.numpy()
    lo, hi = bootstrap(values, np.mean)
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
            "max": float(values.max()), "pairs": int(d.numel()), "mean_ci": [lo, hi]}


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def source_of(folder: Path) -> str:
    return read_jsonl(folder / "invocations.jsonl")[-1].get("source", "synthetic")


def budget(config: dict) -> str:
    """The attack budget an invocation ran with: deterministic steps, or (older records) a wall-clock budget."""
    if config.get("iterations") is not None:
        guard = config.get("time_budget")
        return (f"{config['iterations']} L-BFGS steps x {config['max_eval']} evaluations, tolerance {config['tolerance']:g}"
                + (f", wall-clock guard {guard} s" if guard is not None else ", no wall-clock guard"))
    return (f"time budget {config['time_budget']} s per attack and victim (a wall-clock budget: the record depends "
            f"on the machine's load)")


def section(folder: Path, level: str = "##") -> str:
    """Markdown for one source's folder: a heading, what was run, Table V and Table VI (one level down)."""
    records = read_jsonl(folder / "records.jsonl")
    meta = read_jsonl(folder / "invocations.jsonl")[-1]
    table6 = json.loads((folder / "table6.json").read_text()) if (folder / "table6.json").exists() else {}
    source, config = meta.get("source", "synthetic"), meta["config"]
    wall_clock = config.get("iterations") is None and config.get("time_budget") is not None
    heading = HEADINGS.get(source, source) + (" - wall-clock budget, superseded" if wall_clock else "")
    lines = [f"{level} {heading}", ""]
    if wall_clock:
        lines += [f"> **Not a leakage result.** These attacks stopped on a {config['time_budget']} s wall-clock budget "
                  "per attack (records written before the iteration budgets): how far each got depended on the "
                  "machine's load. Kept for the record; the rows with deterministic budgets supersede them.", ""]
    frames = meta.get("frames") or [config["timesteps"], 2, config.get("synthetic_size"), config.get("synthetic_size")]
    lines.append(f"Victims: {meta.get('victims', config['samples'])} from the {meta.get('victim_split', 'train')} split "
                 f"(Algorithm 2: the first {config.get('in_samples', config['samples'])}); frames {tuple(frames)}; "
                 f"SNN-LeNet (IF, ATan, T = {config['timesteps']}, U(-0.5, 0.5)), one FedSGD step, lr {config['lr']}, "
                 f"{budget(config)}; labels: "
                 f"{meta.get('label_source', 'given')}; code {meta.get('code_version')}.")
    acc = meta.get("judge_accuracy")
    if acc is None:
        lines += ["", "No judge, so no ASR: the cuts have no held-out split to train or test one on "
                  "(10 recordings, one per class)."]
    else:
        n_test = meta.get("judge_test_size") or config.get("synthetic_test", 0)
        lo, hi = wilson(round(acc * n_test), n_test) if n_test else (float("nan"),) * 2
        ceiling, silent = meta.get("judge_on_originals"), meta.get("judge_on_silent")
        lines += ["", f"Judge (spiking CNN, fedsnn.analysis.judges) held-out accuracy {100 * acc:.1f}% "
                  f"[{100 * lo:.1f}, {100 * hi:.1f}] on {n_test} test samples"
                  + (f"; on the victims' originals {100 * ceiling:.1f}% (the ASR a perfect attack would get)"
                     if ceiling is not None else "")
                  + (f"; on all-zero frames with the victims' labels {100 * silent:.1f}% (the ASR of a "
                     "reconstruction with no spike left)" if silent is not None else "") + "."]
    lines += ["", f"{level}# Table V: ours [95% interval] (paper)", "",
              "| tau | attack | post n | post ASR % (paper) | post l2 (paper) | in n | in ASR % (paper) | in l2 (paper) "
              "| spike density post / in | s per attack post / in |", "|---|---|---|---|---|---|---|---|---|---|"]
    for tau in TAUS:
        for attack in ("dlg", "idlg"):
            cells = {a: [r for r in records if (r["tau"], r["attack"], r["algorithm"]) == (tau, attack, a)]
                     for a in ALGORITHMS}
            if not any(cells.values()):
                continue
            paper = PAPER_V[(attack, tau)]
            post, inn = cells["post"], cells["in"]

            def mean(rs: list[dict], key: str) -> str:
                values = [r[key] for r in rs if r.get(key) is not None]
                return f"{np.mean(values):.3g}" if values else "-"

            lines.append(
                f"| {tau} | {attack} | {len(post)} | {rate_cell([r['judge_correct'] for r in post])} ({paper[0]}) "
                f"| {mean_cell([r['l2'] for r in post], 1)} ({paper[1]}) | {len(inn)} "
                f"| {rate_cell([r['judge_correct'] for r in inn])} ({paper[2]}) | {mean_cell([r['l2'] for r in inn], 1)} "
                f"({paper[3]}) | {mean(post, 'spike_density')} / {mean(inn, 'spike_density')} "
                f"| {mean(post, 'seconds')} / {mean(inn, 'seconds')} |")
    statuses = {s: sum(r["status"] == s for r in records) for s in sorted({r["status"] for r in records})}
    lines += ["", f"Attack statuses over all records: {statuses}."]
    if table6:
        count = table6.get("samples", {})
        lines += ["", f"{level}# Table VI: l2 between samples of the training split, self-pairs excluded "
                  f"({count.get('count', '?')} samples, at most {count.get('per_class', '?')} per class)", "",
                  "to_empty: a sample's l2 to the all-zero tensor (not in the paper): what a reconstruction "
                  "binarised to no spike at all scores.", "",
                  "| type | mean [95%] (paper) | std (paper) | min (paper) | max (paper) | pairs |", "|---|---|---|---|---|---|"]
        for name in ("intra", "inter", "to_empty"):
            s, p = table6[name], PAPER_VI.get(name, ("-",) * 4)
            ci = s.get("mean_ci") or [None, None]
            mean_text = _fmt(s["mean"]) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci[0] is not None else "")
            lines.append(f"| {name} | {mean_text} ({p[0]}) | {_fmt(s['std'])} ({p[1]}) | {_fmt(s['min'])} ({p[2]}) "
                         f"| {_fmt(s['max'])} ({p[3]}) | {s['pairs']} |")
    return "\n".join(lines) + "\n"


def threshold_plot(records: list[dict], source: str, path: Path) -> None:
    """ASR and l2 against tau per (attack, algorithm), as the paper's Fig. 5."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_asr, ax_l2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for attack in ("dlg", "idlg"):
        for algorithm in ALGORITHMS:
            cells = [[r for r in records if (r["attack"], r["algorithm"], r["tau"]) == (attack, algorithm, t)] for t in TAUS]
            if not any(cells):
                continue
            verdicts = [[r["judge_correct"] for r in c if r["judge_correct"] is not None] for c in cells]
            ax_asr.plot(TAUS, [100 * np.mean(v) if v else np.nan for v in verdicts], marker="o", label=f"{attack} {algorithm}")
            ax_l2.plot(TAUS, [np.mean([r["l2"] for r in c]) if c else np.nan for c in cells], marker="o",
                       label=f"{attack} {algorithm}")
    ax_asr.set(xlabel="tau", ylabel="ASR %", title=f"ASR ({source})")
    ax_l2.set(xlabel="tau", ylabel="mean l2 to the original", title=f"l2 ({source})")
    ax_asr.legend(fontsize=7)
    ax_l2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(folder: Path) -> None:
    """table5_6.md and thresholds.png of one source's folder."""
    (folder / "table5_6.md").write_text(section(folder, "#"))
    threshold_plot(read_jsonl(folder / "records.jsonl"), source_of(folder), folder / "thresholds.png")


def combine(root: Path) -> None:
    """root/table5_6.md: every source folder under ``root``, real recordings first."""
    folders = [f for f in sorted(root.iterdir()) if (f / "records.jsonl").exists()]
    rank = {f: ORDER.index(source_of(f)) if source_of(f) in ORDER else len(ORDER) for f in folders}
    parts = ["# Tables V and VI: gradient inversion on event data (SNN-LeNet)", "",
             "Each section is one data source (folder); `python -m simulations.table5_6_report "
             f"{root}` rebuilds this file from the records. Ours [95% interval: Wilson for ASR, bootstrap for "
             "mean l2] (paper's figure, DVS128 Gesture).", ""]
    for folder in sorted(folders, key=rank.get):
        write_report(folder)
        parts += [section(folder), f"![thresholds]({folder.name}/thresholds.png)", ""]
    (root / "table5_6.md").write_text("\n".join(parts))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m simulations.table5_6_report", description=__doc__.splitlines()[0])
    p.add_argument("root", help="folder holding one results folder per source")
    combine(Path(p.parse_args(argv).root))


if __name__ == "__main__":
    main()
