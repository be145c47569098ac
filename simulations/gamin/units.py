"""One GAMIN unit = one (target kind, seed, class): attack, score, record; resumable from its record.

A study is many units; each writes one line to ``per_class.jsonl`` (and a
small ``samples/<kind>-s<seed>-c<class>.pt`` for grids) as soon as it ends,
so a stopped study loses at most the unit it was running: ``done_units``
lists what is recorded and the study skips it.

Kinds: "ann", "snn" (trained targets), "<kind>-untrained" (the same
architecture and encoding at its seeded initial weights: what GAMIN and
every metric give when the target has learnt nothing) and "<kind>-invalid"
(NaN weights: must stop with status "invalid-target").
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import torch

from attacks.blackbox import GaminConfig, attack_class, invalid_target_reason, oracle_for_target
from fedsnn.analysis.gamin_scoring import ReferencePools, evaluate_gamin, score_leakage
from fedsnn.analysis.judges import ModelJudge
from fedsnn.task.data import LabelledData
from fedsnn.task.models import Target

GRID_SAMPLES = 4  # samples per unit kept for the grids (uint8)


def base_kind(kind: str) -> str:
    """'snn-untrained' -> 'snn'."""
    return kind.split("-")[0]


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or Infinity: a non-finite figure is written as null."""
    return None if value is None or not math.isfinite(value) else float(value)


def done_units(records: Path) -> set[tuple[str, int, int]]:
    """(kind, seed, class) of every unit already recorded in ``records`` (a JSON-lines file)."""
    if not records.exists():
        return set()
    lines = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    return {(line["kind"], line["seed"], line["class"]) for line in lines}


def read_units(records: Path) -> list[dict]:
    return [json.loads(line) for line in records.read_text().splitlines() if line.strip()] if records.exists() else []


def invert_target(kind: str, seed: int, target: Target, classes: list[int], config: GaminConfig, test: LabelledData,
                  judge: ModelJudge | None, pools: ReferencePools, out: Path,
                  log: Callable[[str], None] = print) -> list[dict]:
    """Run, score and record every class of ``classes`` not yet recorded for (kind, seed); returns the new lines.

    A target with non-finite weights, or one that answers non-finite scores,
    gets one "invalid-target" line per remaining class and no attack.
    """
    records, done = out / "per_class.jsonl", done_units(out / "per_class.jsonl")
    todo = [c for c in classes if (kind, seed, c) not in done]
    reason = invalid_target_reason(dict(target.state_dict()))
    lines = []
    for c in todo:
        if reason is None:
            start = time.perf_counter()
            oracle = oracle_for_target(target, budget=config.budget, seed=seed)
            result = attack_class(oracle, config, c, log=lambda s: log(f"{kind} s{seed} {s}"))
            attack_s = time.perf_counter() - start
            if result.status != "ok":
                reason = result.reason
        if reason is not None:
            line = {"kind": kind, "seed": seed, "class": c, "status": "invalid-target", "reason": reason}
        else:
            (result,) = evaluate_gamin([result], test, oracle_for_target(target, seed=seed + 1), seed=seed,
                                       probes=config.probes)
            leak = score_leakage(result.samples, c, judge, pools)
            line = unit_line(kind, seed, result, attack_s, leak.summary())
            save_samples(out / "samples" / f"{kind}-s{seed}-c{c}.pt", result.samples, leak, pools)
        with records.open("a") as f:
            f.write(json.dumps(line) + "\n")
        lines.append(line)
        log(summary_line(line))
    return lines


def unit_line(kind: str, seed: int, r, attack_s: float, leakage: dict) -> dict:
    """The record of one unit: the paper's five metrics, the leakage checks, cost."""
    return {
        "kind": kind, "seed": seed, "class": r.target_class, "status": r.status,
        "m_global": finite_or_none(r.m_global), "fidelity": finite_or_none(r.fidelity),
        "surrogate_accuracy": finite_or_none(r.surrogate_accuracy), "combined_accuracy": r.combined_accuracy,
        "target_accuracy": finite_or_none(r.target_accuracy), "queries": r.queries, "iterations": r.iterations,
        "best_iteration": r.best_iteration, "attack_s": round(attack_s, 3),
        "s_per_iteration": round(attack_s / max(r.iterations, 1), 5), **leakage,
    }


def summary_line(line: dict) -> str:
    head = f"{line['kind']} seed {line['seed']} class {line['class']}: {line['status']}"
    if line["status"] != "ok":
        return f"{head} ({line['reason']})"
    judge = line["judge_recognised"]
    judged = "no judge" if judge is None else f"judge-recognised {judge['k']}/{judge['n']}"
    close = line["closer_ssim"]
    return (f"{head}, A_T {line['target_accuracy']:.0f}%, A_SoG {line['combined_accuracy']:.0f}%, {judged}, "
            f"closer to own class (SSIM) {close['k']}/{close['n']}, M_global {line['m_global']:.3f} "
            f"({line['iterations']} it, {line['attack_s']:.0f} s)")


def save_samples(path: Path, samples: torch.Tensor, leak, pools: ReferencePools) -> None:
    """The first GRID_SAMPLES samples, their nearest training images (SSIM) and labels, as uint8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    k = min(GRID_SAMPLES, len(samples))
    nearest = torch.as_tensor(leak.nearest[:k])
    to_u8 = lambda x: (x.detach().clamp(0, 1) * 255).round().to(torch.uint8)  # noqa: E731
    best = [max(float(leak.ssim_own[i]), float(leak.ssim_other[i])) for i in range(k)]
    torch.save({"samples": to_u8(samples[:k]), "nearest": to_u8(pools.images[nearest]),
                "nearest_label": pools.labels[nearest].tolist(), "nearest_ssim": best}, path)


def load_samples(path: Path) -> dict | None:
    """Inverse of ``save_samples`` with images back in [0, 1] floats; None if absent."""
    if not path.exists():
        return None
    blob = torch.load(path, weights_only=True)
    return {**blob, "samples": blob["samples"].float() / 255, "nearest": blob["nearest"].float() / 255}


def make_invalid(target: Target) -> Target:
    """``target`` with its first-layer weights set to NaN, in place (the invalid-target control)."""
    with torch.no_grad():
        target.fc1.weight.fill_(float("nan"))
    return target
