"""The privacy-utility study's plan and report (no federation runs: records made by hand)."""

from __future__ import annotations

import json

from simulations.defenses import FLEETS, SWEEP, points
from simulations.defenses_report import pooled, write_report

CHOSEN = {d: 1 for d in SWEEP}


def test_plan_sweeps_every_strength_for_both_fleets_and_repeats_chosen_points():
    plan = points([0], [0, 1, 2], CHOSEN)
    assert len(plan) == len(set(plan))
    for defense, (_, strengths) in SWEEP.items():
        assert len(strengths) >= 4
        for fleet in FLEETS:
            assert {s for d, s, f, seed in plan if d == defense and f == fleet and seed == 0} == set(strengths)
            assert {seed for d, s, f, seed in plan if d == defense and f == fleet and s == strengths[1]} == {0, 1, 2}
    assert {(f, seed) for d, _, f, seed in plan if d == "none"} == {(f, s) for f in FLEETS for s in (0, 1, 2)}
    first = plan[: 2 + 2 * len(SWEEP)]  # no defense, then every defense's weakest strength, both fleets
    assert {d for d, *_ in first} == {"none", *SWEEP}


def leakage_line(psnr: list[float]) -> dict:
    return {"attack": "idlg", "status": "converged",
            "samples": [{"psnr": p, "ssim": p / 50, "success": p > 30, "judge_correct": p > 20} for p in psnr],
            "summary": {"psnr_median": sorted(psnr)[len(psnr) // 2], "control_psnr": 5.0}}


def record(defense: str, strength, fleet: str, seed: int, accuracy: float, psnr: list[float]) -> dict:
    return {"point": f"{defense}-{strength}-{fleet}-s{seed}", "defense": defense, "strength": strength, "fleet": fleet,
            "seed": seed, "accuracy": accuracy, "epsilon": 3.0 if defense.startswith("dp") else None,
            "leakage": [leakage_line(psnr)], "leakage-run": "runs/none", "cpu-s": 1.0}


def test_pooled_leakage_has_medians_an_interval_and_the_evaluators_extra_fields():
    stats = pooled([record("none", None, "lenet", 0, 0.5, [10.0, 20.0, 30.0, 40.0])], "idlg")
    assert stats["psnr"] == 25.0 and stats["samples"] == 4 and stats["success"] == 0.25
    low, high = stats["psnr-ci"]
    assert 10.0 <= low <= 25.0 <= high <= 40.0
    assert stats["extra"] == {"control_psnr": 5.0}


def test_report_has_a_curve_per_defense_and_a_row_per_point(tmp_path):
    rows = [record("none", None, f, 0, 0.5, [30.0, 35.0, 40.0]) for f in FLEETS]
    rows += [record("dp-client-fixed", s, f, 0, 0.5 - s / 4, [30.0 - 20 * s, 31.0, 29.0]) for s in (0.1, 1.0) for f in FLEETS]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = write_report(tmp_path).read_text()
    assert (tmp_path / "curve-dp-client-fixed-idlg.png").exists()
    assert text.count("| dp-client-fixed |") == 4 and text.count("| none |") == 2
    assert "control_psnr 5" in text
