"""The privacy-utility report of ``simulations.defenses``: table, curves, matched comparison, grids, from records.jsonl alone.

    python -m simulations.defenses --data-dir ... --out DIR --report-only

Per (defense, strength, fleet, attack) the per-sample scores of every
attacked client and every seed are pooled: median PSNR, SSIM and **SSIM gain
over the label-only guess** (the evaluator's ``gains-over-label-only``: the
attack's score minus that of the class-mean image of the inferred label, on
the same digit) with 95% percentile-bootstrap intervals, ASR and success
with Wilson intervals, and the judge's verdict on the label-only guesses as
ASR's floor (``fedsnn.analysis.stats``). Accuracy loss = the undefended
fleet's accuracy at the same seed minus the point's; mean [range] over seeds.

Matched comparison: for each defense, each SNN-LeNet point (the undefended one
included) is paired with the LeNet point of the same strength when their mean
accuracy losses differ by at most ``MATCH_TOLERANCE``, else with the LeNet
point of the same defense (or no defense) whose mean loss is nearest (nearest
points, no interpolation: an interpolated gain has no interval of its own). A
pair counts as matched when the losses differ by at most the tolerance. The
difference SNN minus LeNet of the median SSIM gains gets a two-sample
percentile-bootstrap interval (each fleet's samples resampled on their own;
``scipy.stats.bootstrap``); the reading follows that interval, and whether
the two gains' own intervals overlap is reported beside it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402

from fedsnn.analysis import stats  # noqa: E402
from fedsnn.analysis.stats import Interval  # noqa: E402
from fedsnn.experiment.reporting import grid_for_round  # noqa: E402
from fedsnn.experiment.runs import read_jsonl  # noqa: E402

FLEETS = ("lenet", "snn-lenet")
FLEET_STYLE = {"lenet": ("tab:blue", "o", "LeNet (ANN)"), "snn-lenet": ("tab:red", "s", "SNN-LeNet")}
MATCH_TOLERANCE = 0.05  # accuracy-loss gap up to which two points count as matched (~2 binomial SEs at n = 1000)
Key = tuple[str, Any, str]  # (defense, strength, fleet)


def pooled(records: list[dict[str, Any]], attack: str) -> dict[str, Any]:
    """Per-sample scores of ``attack`` over every leakage line of ``records`` -> medians and rates with intervals."""
    lines = [line for r in records for line in r["leakage"] if line["attack"] == attack]
    samples = [s for line in lines for s in line.get("samples", [])]
    gains = [g for line in lines for g in line.get("gains-over-label-only", [])]
    floor = [s.get("judge_correct") for line in lines
             for s in line.get("controls", {}).get("label_only", {}).get("samples", [])]
    return {
        "lines": len(lines), "samples": len(samples),
        "failed": sum(line["status"] in ("failed", "diverged") for line in lines),
        "psnr": stats.median([s["psnr"] for s in samples]),
        "ssim": stats.median([s["ssim"] for s in samples]),
        "gain-ssim": stats.median([g["ssim"] for g in gains]),
        "gain-ssim-values": [g["ssim"] for g in gains],
        "gain-psnr": stats.median([g["psnr"] for g in gains]),
        "success": stats.rate([s.get("success") for s in samples]),
        "asr": stats.rate([s.get("judge_correct") for s in samples]),
        "asr-floor": stats.rate(floor),
        "reused-decoder": sum(bool((line.get("diagnostics") or {}).get("decoder", {}).get("reused")) for line in lines),
    }


def grouped(records: list[dict[str, Any]]) -> dict[Key, list[dict[str, Any]]]:
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["defense"], r["strength"], r["fleet"])].append(r)
    return groups


def accuracy_losses(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """point id -> the undefended accuracy of the same fleet and seed minus the point's (None if not measured)."""
    base = {(r["fleet"], r["seed"]): r["accuracy"] for r in records if r["defense"] == "none"}
    return {r["point"]: (base[(r["fleet"], r["seed"])] - r["accuracy"] if (r["fleet"], r["seed"]) in base else None)
            for r in records}


def group_loss(rs: list[dict[str, Any]], losses: dict[str, float | None]) -> tuple[float, float, float] | None:
    """Mean, min and max accuracy loss over the group's seeds that have an undefended twin."""
    values = [losses[r["point"]] for r in rs if losses[r["point"]] is not None]
    if not values:
        return None
    return float(np.mean(values)), float(min(values)), float(max(values))


def median_difference(a: list[float], b: list[float]) -> Interval:
    """median(b) - median(a) with a two-sample percentile-bootstrap interval (stats.RESAMPLES, seed stats.SEED)."""
    x = np.asarray([v for v in a if v is not None and math.isfinite(v)], dtype=float)
    y = np.asarray([v for v in b if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0 or len(y) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    point = float(np.median(y) - np.median(x))
    if len(x) < 2 or len(y) < 2:
        return Interval(point, math.nan, math.nan, len(x) + len(y))
    result = sps.bootstrap((x, y), lambda p, q, axis: np.median(q, axis=axis) - np.median(p, axis=axis),
                           n_resamples=stats.RESAMPLES, confidence_level=stats.CONFIDENCE, method="percentile",
                           vectorized=True, paired=False, rng=np.random.default_rng(stats.SEED))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Interval(point, low if math.isfinite(low) else point, high if math.isfinite(high) else point, len(x) + len(y))


def overlap(a: Interval, b: Interval) -> bool:
    return a.low <= b.high and b.low <= a.high


def matched_pairs(groups: dict[Key, list[dict[str, Any]]], losses: dict[str, float | None], attack: str,
                  defense: str) -> list[dict[str, Any]]:
    """Each SNN point of ``defense`` (and the undefended one) with the LeNet point of the same defense nearest in loss."""
    def candidates(fleet: str) -> list[Key]:
        keys = [("none", None, fleet)] + sorted((k for k in groups if k[0] == defense and k[2] == fleet), key=_order)
        return [k for k in keys if k in groups and group_loss(groups[k], losses) is not None]

    ann = candidates("lenet")
    out = []
    for snn_key in candidates("snn-lenet"):
        if not ann:
            break
        snn_loss = group_loss(groups[snn_key], losses)[0]
        twin = (snn_key[0], snn_key[1], "lenet")
        if twin in ann and abs(group_loss(groups[twin], losses)[0] - snn_loss) <= MATCH_TOLERANCE:
            ann_key = twin  # the same strength, when its loss is within the tolerance
        else:
            ann_key = min(ann, key=lambda k: (abs(group_loss(groups[k], losses)[0] - snn_loss), _order(k)))
        ann_loss = group_loss(groups[ann_key], losses)[0]
        a, s = pooled(groups[ann_key], attack), pooled(groups[snn_key], attack)
        if not a["samples"] or not s["samples"]:
            continue
        out.append({"snn": snn_key, "ann": ann_key, "snn-loss": snn_loss, "ann-loss": ann_loss,
                    "gap": abs(snn_loss - ann_loss), "snn-gain": s["gain-ssim"], "ann-gain": a["gain-ssim"],
                    "difference": median_difference(a["gain-ssim-values"], s["gain-ssim-values"]),
                    "overlap": overlap(a["gain-ssim"], s["gain-ssim"])})
    return out


READINGS = ("SNN leaks less", "LeNet leaks less", "no clear difference", "neither above label-only")


def pair_verdict(pair: dict[str, Any]) -> str:
    """One of READINGS: 'neither above label-only' when neither fleet's gain interval lies above 0
    (nothing beyond the label); else by the interval of the difference SNN - LeNet: below 0, above 0,
    or spanning 0 ('no clear difference'). Whether the two gains' own intervals overlap is reported apart."""
    if pair["snn-gain"].low <= 0 and pair["ann-gain"].low <= 0:
        return "neither above label-only"
    diff = pair["difference"]
    if diff.high < 0:
        return "SNN leaks less"
    if diff.low > 0:
        return "LeNet leaks less"
    return "no clear difference"


def plot_defense(defense: str, groups: dict, losses: dict, attack: str, path: Path) -> None:
    """Accuracy loss (x) against median SSIM gain over label-only (y, 95% CI), both fleets; strength (and epsilon) labelled."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for fleet, (color, marker, label) in FLEET_STYLE.items():
        keys = [("none", None, fleet)] + sorted((k for k in groups if k[0] == defense and k[2] == fleet), key=_order)
        points = []
        for k in keys:
            loss, s = (group_loss(groups[k], losses), pooled(groups[k], attack)) if k in groups else (None, None)
            if loss is not None and s["samples"]:
                points.append((k, loss, s["gain-ssim"]))
        if not points:
            continue
        xs = [p[1][0] for p in points]
        ys = [p[2].value for p in points]
        xerr = np.array([[p[1][0] - p[1][1] for p in points], [p[1][2] - p[1][0] for p in points]])
        yerr = np.array([[_nz(p[2].value - p[2].low) for p in points], [_nz(p[2].high - p[2].value) for p in points]])
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, marker=marker, color=color, label=label, capsize=2, lw=1)
        for (k, _, _), x, y in zip(points, xs, ys):
            ax.annotate(_point_label(k, groups[k]), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points",
                        color=color)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("accuracy loss vs the undefended fleet, same seed (mean, range over seeds)")
    ax.set_ylabel(f"{attack}: median SSIM gain over label-only guess (95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{defense}, {attack}: labels = strength" + (", epsilon" if defense.startswith("dp") or defense == "local-dp" else ""),
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table_lines(groups: dict, losses: dict, attack: str, defenses: list[str]) -> list[str]:
    lines = ["| defense | strength | fleet | seeds | accuracy mean [range] | accuracy loss mean [range] | epsilon | n | "
             "median PSNR dB [95% CI] | median SSIM [95% CI] | **median SSIM gain over label-only [95% CI]** | "
             "ASR [95% CI] (label-only floor) | success [95% CI] | failed lines |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=lambda k: (_defense_rank(k[0], defenses), _order(k), k[2])):
        rs, s = groups[key], pooled(groups[key], attack)
        if not s["lines"]:
            continue
        accs = [r["accuracy"] for r in rs]
        loss = group_loss(rs, losses)
        loss_text = "-" if loss is None else f"{loss[0]:+.3f} [{loss[1]:+.3f}, {loss[2]:+.3f}]"
        lines.append(
            f"| {key[0]} | {_fmt(key[1])} | {key[2]} | {len(rs)} | {np.mean(accs):.3f} [{min(accs):.3f}, {max(accs):.3f}] "
            f"| {loss_text} | {_fmt(_epsilon(rs))} | {s['samples']} | {s['psnr'].format('.1f')} | {s['ssim'].format('.3f')} "
            f"| **{s['gain-ssim'].format('+.3f')}** | {s['asr'].format('.0f', 100, '%')} n={s['asr'].n} ({s['asr-floor'].format('.0f', 100, '%')}) "
            f"| {s['success'].format('.0f', 100, '%')} | {s['failed']} |")
    return lines


def matched_lines(groups: dict, losses: dict, attack: str, defenses: list[str]) -> tuple[list[str], list[dict]]:
    lines = ["| defense | SNN point (loss) | nearest LeNet point (loss) | loss gap | SNN gain | LeNet gain | "
             "SNN - LeNet [95% CI] | gain intervals overlap | reading |", "|---|---|---|---|---|---|---|---|---|"]
    every = []
    for defense in defenses:
        for p in matched_pairs(groups, losses, attack, defense):
            if p["snn"][0] == "none" and every and any(q["snn"][0] == "none" for q in every):
                continue  # the undefended pair once per attack
            every.append({**p, "defense": defense})
            lines.append(
                f"| {defense if p['snn'][0] != 'none' else 'none (either)'} | {_fmt(p['snn'][1]) if p['snn'][0] != 'none' else 'none'} ({p['snn-loss']:+.3f}) "
                f"| {_fmt(p['ann'][1]) if p['ann'][0] != 'none' else 'none'} ({p['ann-loss']:+.3f}) | {p['gap']:.3f}"
                + ("" if p["gap"] <= MATCH_TOLERANCE else " (unmatched)")
                + f" | {p['snn-gain'].format('+.3f')} | {p['ann-gain'].format('+.3f')} | {p['difference'].format('+.3f')} "
                f"| {'yes' if p['overlap'] else 'no'} | {pair_verdict(p)} |")
    return lines, every


def paragraph(attack: str, pairs: list[dict[str, Any]]) -> str:
    """One generated paragraph: at matched accuracy loss, which fleet leaks less (by SSIM gain), by how much."""
    matched = [p for p in pairs if p["gap"] <= MATCH_TOLERANCE and p["snn"][0] != "none"]
    undefended = next((p for p in pairs if p["snn"][0] == "none" and p["ann"][0] == "none"), None)
    head = (f"**{attack}.** Comparison at matched accuracy loss by nearest points of the same defense (no interpolation), "
            f"matched when the mean losses differ by at most {MATCH_TOLERANCE}; leakage = median SSIM gain over the "
            "label-only guess, 95% bootstrap intervals. ")
    if undefended is not None:
        head += (f"Undefended: SNN-LeNet {undefended['snn-gain'].format('+.3f')}, LeNet {undefended['ann-gain'].format('+.3f')} "
                 f"(difference {undefended['difference'].format('+.3f')}; {pair_verdict(undefended)}"
                 + ("; the two gains' intervals overlap" if undefended["overlap"] else "") + "). ")
    if not matched:
        return head + "No defended SNN point has a LeNet point within the tolerance: the fleets cannot be compared at equal loss here."
    counts = {v: [p for p in matched if pair_verdict(p) == v] for v in READINGS}
    decided = counts["SNN leaks less"] + counts["LeNet leaks less"]
    text = head + (f"Of {len(matched)} matched defended pairs, SNN-LeNet leaks less (difference interval below 0) in "
                   f"{len(counts['SNN leaks less'])}, LeNet leaks less in {len(counts['LeNet leaks less'])}, the "
                   f"difference interval spans 0 in {len(counts['no clear difference'])}, and neither fleet's gain "
                   f"interval lies above zero (nothing beyond the label) in {len(counts['neither above label-only'])}"
                   + (f"; in {sum(p['overlap'] for p in decided)} of the {len(decided)} decided pairs the two gains' own "
                      "intervals overlap" if decided else "") + ". ")
    details = []
    for p in matched:
        details.append(f"{p['defense']} {_fmt(p['snn'][1])} vs {_fmt(p['ann'][1]) if p['ann'][0] != 'none' else 'none'} "
                       f"(losses {p['snn-loss']:+.2f}/{p['ann-loss']:+.2f}): SNN - LeNet {p['difference'].format('+.3f')}, "
                       f"{pair_verdict(p)}" + (", gain intervals overlap" if p["overlap"] else ""))
    text += "Pairs (SNN strength vs LeNet strength): " + "; ".join(details) + "."
    unmatched = len([p for p in pairs if p["gap"] > MATCH_TOLERANCE and p["snn"][0] != "none"])
    if unmatched:
        text += f" {unmatched} SNN point(s) had no LeNet point within the tolerance (table above)."
    return text


def chosen_strength(groups: dict, defense: str) -> Any:
    """The strength measured at the most seeds for both fleets (ties: the strongest)."""
    both = [k for k in groups if k[0] == defense and k[2] == "lenet" and (k[0], k[1], "snn-lenet") in groups]
    if not both:
        return None
    best = max(both, key=lambda k: (min(len(groups[k]), len(groups[(k[0], k[1], "snn-lenet")])), _order(k)))
    return best[1]


def write_report(out: Path) -> Path:
    records = read_jsonl(out / "records.jsonl")
    groups, losses = grouped(records), accuracy_losses(records)
    attacks = sorted({line["attack"] for r in records for line in r["leakage"]})
    defenses = [d for d in dict.fromkeys(r["defense"] for r in records) if d != "none"]
    lines = ["# Defenses: accuracy against leakage, ANN and SNN fleets\n",
             "Generated by `python -m simulations.defenses` from `records.jsonl` (settings in its docstring; method in "
             "`simulations/defenses_report.py`). Accuracy: global test accuracy after R rounds, mean [range] over seeds; "
             "loss = the undefended fleet's accuracy at the same seed minus the point's. Leakage: per-sample scores "
             "pooled over the attacked clients and seeds (n = samples); medians with 95% percentile-bootstrap intervals, "
             "rates with Wilson intervals; SSIM gain = attack SSIM minus the label-only guess's (class mean of the "
             "inferred label) on the same digit; ASR floor = the judge on the label-only guesses; ASR's n counts the samples "
             "a judge scored (a run with judge='cached' and no judge cached for its seed records none). Epsilon at the "
             "recorded delta (client-level for dp-client-fixed/local-dp, sample-level for dp-sgd).\n"]
    paragraphs = []
    for attack in attacks:
        lines.append(f"\n## {attack}\n")
        for defense in defenses:
            name = f"curve-{defense}-{attack}.png"
            plot_defense(defense, groups, losses, attack, out / name)
            lines.append(f"![{defense} {attack}]({name})\n")
        lines += table_lines(groups, losses, attack, defenses)
        lines.append(f"\n### {attack}: matched accuracy loss (nearest points)\n")
        table, pairs = matched_lines(groups, losses, attack, defenses)
        lines += table
        paragraphs.append(paragraph(attack, pairs))
        lines.append("\n" + paragraphs[-1] + "\n")
        lines.append(f"\n### {attack}: reconstructions (seed of the first record) undefended and at each defense's "
                     "chosen strength (the one measured at the most seeds)\n")
        for defense in ["none", *defenses]:
            strength = None if defense == "none" else chosen_strength(groups, defense)
            if defense != "none" and strength is None:
                continue
            if not all((defense, strength, f) in groups for f in FLEETS):
                continue
            runs = {fleet: out / groups[(defense, strength, fleet)][0]["leakage-run"] for fleet in FLEETS}
            name = f"grid-{defense}-{_fmt(strength)}-{attack}.png"
            if all(r.exists() for r in runs.values()) and grid_for_round(runs, 1, attack, out / name):
                lines.append(f"\n{defense}" + (f" at {_fmt(strength)}" if strength is not None else "")
                             + f":\n\n![grid]({name})\n")
    cpu, wall = sum(r["cpu-s"] for r in records), sum(r.get("wall-s", 0.0) for r in records)
    lines.append(f"\n{len(records)} points, {cpu / 60:.1f} CPU-minutes and {wall / 60:.1f} wall-minutes summed over "
                 "points (process CPU time of the study; wall time of each point).\n")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _order(key: Key) -> float:
    """Weak to strong: larger noise, smaller epsilon, fewer entries or bits are stronger."""
    defense, strength = key[0], key[1]
    if strength is None:
        return -np.inf
    return strength if defense in ("dp-client-fixed", "dp-sgd") else -strength


def _defense_rank(defense: str, defenses: list[str]) -> int:
    return -1 if defense == "none" else defenses.index(defense)


def _epsilon(rs: list[dict[str, Any]]) -> float | None:
    eps = [r["epsilon"] for r in rs if r.get("epsilon") is not None]
    return float(np.mean(eps)) if eps else None


def _point_label(key: Key, rs: list[dict[str, Any]]) -> str:
    if key[0] == "none":
        return "none"
    eps = _epsilon(rs)
    return _fmt(key[1]) + (f", e={_fmt(eps)}" if eps is not None else "")


def _nz(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
