"""Tables (CSV + markdown) and image grids for the GAMIN reproduction, ours beside the paper's.

Every figure is ``value [low, high]``: means over (seed, class) units with a
percentile bootstrap interval, per-class rates pooled over seeds with a
Wilson interval (``fedsnn.analysis.gamin_scoring``). Rows: each target kind,
its untrained control, the references (random probes = floor, class means
and held-out images = ceilings) and the paper's figures.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from fedsnn.analysis import stats
from server.black_box import plot_leakage_grid
from simulations.gamin.paper import TABLE_I, TABLE_II
from simulations.gamin.units import load_samples

PAPER_METRICS = ("m_global", "fidelity", "surrogate_accuracy", "combined_accuracy", "target_accuracy")
LEAK_METRICS = ("judge_recognised", "closer_ssim", "closer_feature", "median_ssim_own")
HEADERS = ("M_global", "F_S", "A_S %", "A_SoG %", "A_T %", "judge-recognised %", "closer to own class: SSIM %",
           "closer to own class: judge features %", "SSIM to nearest own-class training image (median)")
REFERENCES = {"random-probe": "random U(0,1) probes (floor)", "class-mean": "class-mean image (ceiling)",
              "held-out": "held-out real images (ceiling)"}


def cell(values: Sequence[float | None], digits: int) -> str:
    """'mean [low, high]' over units (percentile bootstrap), '(n=1)' for one unit, '-' when nothing was measured."""
    interval = stats.mean([v for v in values if v is not None])
    if interval.n == 0:
        return "-"
    if interval.n == 1:
        return f"{interval.value:.{digits}f} (n=1)"
    return interval.format(f".{digits}f")


def unit_value(line: dict, metric: str) -> float | None:
    """A unit's figure: the paper's metrics as recorded, leakage rates in percent."""
    if metric in PAPER_METRICS or metric.startswith("median"):
        return line.get(metric)
    rate = line.get(metric)
    return None if rate is None else 100 * rate["rate"]


def _paper_cells(dataset: str, kind: str) -> list[str]:
    (m, ms), fs, (a_s, a_ss), a_sog, a_t = TABLE_II[(dataset, kind)]
    return [f"{m:.4f} ± {ms:.2f}", f"{fs:.4f}", f"{a_s:.2f} ± {a_ss:.1f}", f"{a_sog:.1f}", f"{a_t:.1f}",
            *["-"] * len(LEAK_METRICS)]


def table2_rows(dataset: str, units: list[dict], references: dict[str, list[dict]]) -> list[list[str]]:
    kinds = list(dict.fromkeys(u["kind"] for u in units))
    rows = []
    for kind in kinds:
        mine = [u for u in units if u["kind"] == kind]
        ok = [u for u in mine if u["status"] == "ok"]
        seeds = sorted({u["seed"] for u in mine})
        label = f"{len(ok)} units, seeds {','.join(map(str, seeds))}"
        if not ok:
            rows.append([kind.upper(), "ours", f"status {mine[0]['status']} ({len(mine)} units): {mine[0].get('reason', '')}",
                         *["-"] * len(HEADERS)])
            continue
        cells = [cell([unit_value(u, m) for u in ok], 3 if m in ("m_global", "fidelity", "median_ssim_own") else 1)
                 for m in PAPER_METRICS + LEAK_METRICS]
        rows.append([kind.upper(), "ours", label, *cells])
        if "-" not in kind and (dataset, kind) in TABLE_II:
            rows.append([kind.upper(), "paper", "10 classes" if dataset == "mnist" else "40 classes",
                         *_paper_cells(dataset, kind)])
    attacked = {u["class"] for u in units}
    for name, title in REFERENCES.items():  # over the attacked classes only: floors differ by class
        per_class = [r for r in references.get(name, []) if r["class"] in attacked]
        cells = [cell([unit_value(r, m) for r in per_class], 3 if m.startswith("median") else 1) for m in LEAK_METRICS]
        rows.append([title, "reference", f"{len(per_class)} classes", *["-"] * 5, *cells])
    return rows


# (A, B) pairs compared unit by unit; B - A < 0 means B leaks less than A.
COMPARISONS = (("ann", "snn"), ("ann-untrained", "ann"), ("snn-untrained", "snn"))
DIRECTION = {"less": "lower", "more": "higher", "not different": "not different"}
COMPARED = (("judge_recognised", "judge-recognised %"), ("closer_ssim", "closer to own class (SSIM) %"),
            ("median_ssim_own", "median SSIM to nearest own-class image"), ("target_accuracy", "A_T %"))


def comparison_rows(units: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Kind B against kind A on the units both ran (same seed and class).

    Effect size: the mean of B - A over those units with its percentile
    bootstrap interval (the mean, because the per-class rates are mostly 0 or
    100: the generator collapses onto one image per class, so the median
    difference would read 0 even when most classes differ); test: Wilcoxon
    signed-rank on the differences (``fedsnn.analysis.stats.paired``).
    """
    ok = {(u["kind"], u["seed"], u["class"]): u for u in units if u["status"] == "ok"}
    head = ["B vs A", "metric", "paired units", "A", "B", "B - A, mean [95% bootstrap]", "Wilcoxon p", "B against A"]
    rows = []
    for a, b in COMPARISONS:
        shared = sorted((s, c) for k, s, c in ok if k == b and (a, s, c) in ok)
        if len(shared) < 2:
            continue
        for metric, title in COMPARED:
            xa = [unit_value(ok[(a, s, c)], metric) for s, c in shared]
            xb = [unit_value(ok[(b, s, c)], metric) for s, c in shared]
            if None in xa or None in xb:
                continue
            result = stats.paired(xa, xb, np.mean)
            digits = 3 if metric.startswith("median") else 1
            rows.append([f"{b.upper()} vs {a.upper()}", title, str(len(shared)), f"{np.mean(xa):.{digits}f}",
                         f"{np.mean(xb):.{digits}f}", result.difference.format(f"+.{digits}f"),
                         f"{result.p_value:.2g}", DIRECTION[result.direction]])
    return head, rows


def per_class_rows(units: list[dict], references: dict[str, list[dict]], metric: str) -> tuple[list[str], list[list[str]]]:
    """Rows = classes; columns = kinds (rate pooled over seeds, Wilson) and the references."""
    kinds = [k for k in dict.fromkeys(u["kind"] for u in units) if any(u["kind"] == k and u["status"] == "ok" for u in units)]
    classes = sorted({u["class"] for u in units})
    head = ["class", *[k.upper() for k in kinds], *REFERENCES]
    rows = []
    for c in classes:
        row = [str(c)]
        for kind in kinds:
            got = [u[metric] for u in units if u["kind"] == kind and u["class"] == c and u["status"] == "ok" and u.get(metric)]
            row.append(_pooled([g["k"] for g in got], [g["n"] for g in got]))
        for name in REFERENCES:
            got = [r[metric] for r in references.get(name, []) if r["class"] == c and r.get(metric)]
            row.append(_pooled([g["k"] for g in got], [g["n"] for g in got]))
        rows.append(row)
    return head, rows


def _pooled(ks: Sequence[int], ns: Sequence[int]) -> str:
    if not ns:
        return "-"
    return f"{stats.wilson(sum(ks), sum(ns)).format('.0f', 100)} ({sum(ks)}/{sum(ns)})"


def target_accuracy_rows(units: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Rows = classes; columns = kinds: A_T per seed ('100/0/100')."""
    kinds = [k for k in dict.fromkeys(u["kind"] for u in units) if any(u["kind"] == k and u["status"] == "ok" for u in units)]
    classes = sorted({u["class"] for u in units})
    rows = []
    for c in classes:
        row = [str(c)]
        for kind in kinds:
            got = sorted((u["seed"], u["target_accuracy"]) for u in units if u["kind"] == kind and u["class"] == c
                         and u["status"] == "ok")
            row.append("/".join(f"{a:.0f}" for _, a in got) or "-")
        rows.append(row)
    return ["class", *[k.upper() for k in kinds]], rows


def write_leakage_tables(out: Path, dataset: str, accuracy: dict[str, float], units: list[dict],
                         references: dict[str, list[dict]]) -> str:
    """Table I, Table II (ours, controls, references, paper) and per-class tables; returns the markdown."""
    head1 = ["dataset", "target (seed)", "test accuracy % (ours)", "paper"]
    rows1 = [[dataset, name.upper(), f"{acc:.2f}", f"{TABLE_I[(dataset, name.split('-')[0])]:.2f}" if "-s" in name
              and name.count("-") == 1 else "-"] for name, acc in accuracy.items()]
    head2 = ["target", "source", "units", *HEADERS]
    rows2 = table2_rows(dataset, units, references)
    with (out / "table2.csv").open("w", newline="") as f:
        csv.writer(f).writerows([head2, *rows2])
    md = "## Table I: target test accuracy (%)\n\n" + markdown_table(head1, rows1)
    md += ("\n## Table II: GAMIN metrics and leakage checks, mean [95% bootstrap interval] over (seed, class) units\n\n"
           + markdown_table(head2, rows2))
    head, rows = comparison_rows(units)
    if rows:
        md += ("\n## Does B leak less than A? Paired over the (seed, class) units both ran\n\n"
               "'lower' / 'higher': Wilcoxon p < 0.05 and the sign of the mean difference; 'not different' otherwise. "
               "A_T is the target's own verdict, not a leakage measure (an untrained target scores on it).\n\n"
               + markdown_table(head, rows))
    head, rows = target_accuracy_rows(units)
    md += "\n## A_T per class (%, one figure per seed)\n\n" + markdown_table(head, rows)
    for metric, title in (("judge_recognised", "Judge-recognised rate per class"),
                          ("closer_ssim", "Closer to own class than to the others (SSIM) per class")):
        head, rows = per_class_rows(units, references, metric)
        md += f"\n## {title}: % [Wilson 95%] (k/n samples, pooled over seeds)\n\n" + markdown_table(head, rows)
    (out / "tables.md").write_text(md)
    return md


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def write_rows(out_dir: Path, stem: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Rewrite <stem>.csv and <stem>.md with every row so far (call after each row, so a stopped run keeps them)."""
    with (out_dir / f"{stem}.csv").open("w", newline="") as f:
        csv.writer(f).writerows([head, *rows])
    (out_dir / f"{stem}.md").write_text(markdown_table(head, rows))


def save_leakage_grid(path: Path, samples_dir: Path, units: list[dict], seed: int, title: str,
                      per_class: int = 1) -> None:
    """Per class, each kind's inverted samples beside their nearest training image (from the unit records)."""
    kinds = [k for k in dict.fromkeys(u["kind"] for u in units) if any(u["kind"] == k and u["status"] == "ok" for u in units)]
    panels = {}
    for kind in kinds:
        found = {u["class"]: load_samples(samples_dir / f"{kind}-s{seed}-c{u['class']}.pt")
                 for u in units if u["kind"] == kind and u["seed"] == seed and u["status"] == "ok"}
        panels[kind.upper()] = {c: blob for c, blob in found.items() if blob is not None}
    if any(panels.values()):
        plot_leakage_grid(path, panels, title, per_class)
