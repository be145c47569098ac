"""95% intervals for the studies' tables (``fedsnn.analysis.stats``): Wilson for rates, bootstrap for means/medians.

Every cell a table reports beside the paper's carries its n and one of these,
so that a difference from the paper can be read against the sampling error.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fedsnn.analysis import stats
from fedsnn.experiment.runs import read_jsonl

CONFIDENCE = 0.95


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson score interval of a rate successes / n, as fractions; (nan, nan) for n = 0."""
    interval = stats.wilson(successes, n, CONFIDENCE)
    return interval.low, interval.high


def bootstrap(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
              resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (np.mean, np.median) over ``values``.

    n < 2 gives (nan, nan); constant values give (v, v): every resample is the same.
    """
    interval = stats.bootstrap(values, statistic, resamples=resamples, seed=seed, confidence=CONFIDENCE)
    return (float("nan"), float("nan")) if interval.n < 2 else (interval.low, interval.high)


def rate_cell(flags: Sequence[object], scale: float = 100.0) -> str:
    """'k/n = r% [lo, hi]' for booleans (None entries are left out); '-' when nothing was scored."""
    scored = [bool(f) for f in flags if f is not None]
    if not scored:
        return "-"
    k, n = sum(scored), len(scored)
    lo, hi = wilson(k, n)
    return f"{scale * k / n:.1f} [{scale * lo:.1f}, {scale * hi:.1f}] ({k}/{n})"


def mean_cell(values: Sequence[float], digits: int = 2, statistic: Callable = np.mean) -> str:
    """'m [lo, hi]' of the finite values with their bootstrap interval; '-' when none."""
    x = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not x:
        return "-"
    lo, hi = bootstrap(x, statistic)
    return f"{statistic(np.array(x)):.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def table4_intervals(records: list[dict], asr_note: str) -> str:
    """Table IV's cells with intervals: success and label accuracy (Wilson), PSNR and SSIM mean and
    median (bootstrap), one row per (dataset, attack, model) in ``records`` of ``simulations.table4``."""
    cells: dict[tuple[str, str, str], list[dict]] = {}
    for r in records:
        cells.setdefault((r["dataset"], r["attack"], r["model"]), []).append(r)
    lines = ["| dataset | attack | model | n | success (MSE < 1e-3) % | label accuracy % | PSNR dB mean | PSNR dB median "
             "| SSIM mean | SSIM median | ASR |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (dataset, attack, model), rs in sorted(cells.items()):
        psnr, ssim = [r["psnr"] for r in rs], [r["ssim"] for r in rs]
        lines.append(f"| {dataset} | {attack} | {model} | {len(rs)} | {rate_cell([r['success'] for r in rs])} "
                     f"| {rate_cell([r['label_correct'] for r in rs])} | {mean_cell(psnr, 1)} "
                     f"| {mean_cell(psnr, 1, np.median)} | {mean_cell(ssim, 3)} | {mean_cell(ssim, 3, np.median)} "
                     f"| {asr_note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m simulations.intervals",
                                description="Table IV cells with 95% intervals, from a simulations.table4 --out folder")
    p.add_argument("out", help="folder holding records.jsonl of simulations.table4")
    p.add_argument("--asr-note", default="none: no judge", help="text of the ASR column when no judge scored")
    args = p.parse_args(argv)
    out = Path(args.out)
    text = table4_intervals(read_jsonl(out / "records.jsonl"), args.asr_note)
    (out / "intervals.md").write_text("# Table IV cells with 95% intervals (Wilson for rates, bootstrap for PSNR/SSIM)"
                                      "\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
