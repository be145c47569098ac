"""Tables (CSV + markdown) and image grids for the GAMIN reproduction."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from attacks.blackbox import GaminResult  # noqa: E402
from simulations.gamin.paper import TABLE_I, TABLE_II  # noqa: E402

METRICS = ("m_global", "fidelity", "surrogate_accuracy", "combined_accuracy", "target_accuracy")
HEADERS = ("M_global", "F_S", "A_S", "A_SoG", "A_T")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _paper_cells(dataset: str, kind: str) -> list[str]:
    (m, ms), fs, (a_s, a_ss), a_sog, a_t = TABLE_II[(dataset, kind)]
    return [f"{m:.4f} ± {ms:.2f}", f"{fs:.4f}", f"{a_s:.2f} ± {a_ss:.1f}", f"{a_sog:.1f}", f"{a_t:.1f}"]


def write_per_class(path: Path, kind: str, results: Sequence[GaminResult]) -> None:
    """One row per attacked class with every metric, queries and wall time."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["target", "class", *METRICS, "queries", "iterations", "best_iteration", "wall_time_s"])
        for r in results:
            w.writerow([kind, r.target_class, *(f"{getattr(r, m):.6f}" for m in METRICS),
                        r.queries, r.iterations, r.best_iteration, f"{r.wall_time_s:.2f}"])


def write_tables(out: Path, dataset: str, accuracy: dict[str, float], results: dict[str, list[GaminResult]]) -> str:
    """Table I and Table II, ours beside the paper's, as CSV and markdown; returns the markdown."""
    rows1 = [[dataset, k.upper(), f"{accuracy[k]:.2f}", f"{TABLE_I[(dataset, k)]:.2f}"] for k in accuracy]
    rows2 = []
    for kind, res in results.items():
        cells = []
        for m in METRICS:
            mean, std = _mean_std([getattr(r, m) for r in res])
            cells.append(f"{mean:.4f} ± {std:.2f}" if m in ("m_global", "fidelity") else f"{mean:.2f} ± {std:.1f}")
        rows2.append([dataset, kind.upper(), "ours", *cells])
        rows2.append([dataset, kind.upper(), "paper", *_paper_cells(dataset, kind)])
    head1 = ["dataset", "target", "test accuracy (ours)", "paper"]
    head2 = ["dataset", "target", "source", *HEADERS]
    for name, head, rows in (("table1", head1, rows1), ("table2", head2, rows2)):
        with (out / f"{name}.csv").open("w", newline="") as f:
            csv.writer(f).writerows([head, *rows])
    md = "## Table I: target test accuracy (%)\n\n" + markdown_table(head1, rows1)
    md += "\n## Table II: GAMIN metrics, mean ± std across classes\n\n" + markdown_table(head2, rows2)
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


def save_grid(path: Path, results: dict[str, list[GaminResult]], originals: dict[int, torch.Tensor],
              max_classes: int = 10, per_class: int = 1) -> None:
    """Figs 3-4 layout: one column per class; rows = a real training image,
    then ``per_class`` inverted samples for each target kind."""
    classes = [r.target_class for r in next(iter(results.values()))][:max_classes]
    rows = ["original"] + [f"{k.upper()} #{i + 1}" for k in results for i in range(per_class)]
    fig, axes = plt.subplots(len(rows), len(classes), figsize=(1.2 * len(classes), 1.3 * len(rows)), squeeze=False)
    by_class = {k: {r.target_class: r for r in res} for k, res in results.items()}
    for j, c in enumerate(classes):
        images = [originals[c]] + [by_class[k][c].samples[i] for k in results for i in range(per_class)]
        for i, img in enumerate(images):
            ax = axes[i][j]
            ax.imshow(img.squeeze(0).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(str(c), fontsize=8)
            if j == 0:
                ax.set_ylabel(rows[i], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
