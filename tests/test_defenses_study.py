"""The privacy-utility study's plan and report (no federation runs: records made by hand)."""

from __future__ import annotations

import json

import pytest

from simulations.defenses import FLEETS, SWEEP, points
from simulations.defenses_report import (accuracy_losses, group_loss, grouped, matched_pairs, median_difference,
                                         pair_verdict, paragraph, pooled, write_report)

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


def leakage_line(ssim: list[float], label_only: float = 0.3, attack: str = "idlg") -> dict:
    """A made-up evaluator line: per-sample scores, the label-only control and the gains over it."""
    samples = [{"psnr": 40 * s, "ssim": s, "success": s > 0.9, "judge_correct": s > 0.5} for s in ssim]
    control = [{"psnr": 40 * label_only, "ssim": label_only, "success": False, "judge_correct": i % 2 == 0}
               for i in range(len(ssim))]
    return {"attack": attack, "status": "converged", "samples": samples,
            "controls": {"label_only": {"samples": control}},
            "gains-over-label-only": [{"ssim": s - label_only, "psnr": 40 * (s - label_only)} for s in ssim]}


def record(defense: str, strength, fleet: str, seed: int, accuracy: float, ssim: list[float]) -> dict:
    return {"point": f"{defense}-{strength}-{fleet}-s{seed}", "defense": defense, "strength": strength, "fleet": fleet,
            "seed": seed, "accuracy": accuracy, "epsilon": 3.0 if defense.startswith("dp") else None,
            "leakage": [leakage_line(ssim)], "leakage-run": "runs/none", "cpu-s": 1.0, "wall-s": 2.0}


def test_pooled_leakage_has_medians_gains_over_label_only_and_rates_with_intervals():
    stats = pooled([record("none", None, "lenet", 0, 0.5, [0.2, 0.4, 0.6, 0.95])], "idlg")
    assert stats["samples"] == 4 and stats["ssim"].value == 0.5 and stats["gain-ssim"].value == pytest.approx(0.2)
    assert stats["gain-ssim"].low <= 0.2 <= stats["gain-ssim"].high and stats["gain-ssim"].n == 4
    assert stats["asr"].value == 0.5 and stats["asr-floor"].value == 0.5 and stats["success"].value == 0.25
    assert 0 < stats["asr"].low < 0.5 < stats["asr"].high < 1  # Wilson, n = 4


def test_accuracy_loss_is_against_the_undefended_fleet_at_the_same_seed():
    rows = [record("none", None, "lenet", 0, 0.8, [0.5]), record("none", None, "lenet", 1, 0.6, [0.5]),
            record("topk", 0.1, "lenet", 0, 0.7, [0.5]), record("topk", 0.1, "lenet", 1, 0.3, [0.5]),
            record("topk", 0.1, "snn-lenet", 0, 0.7, [0.5])]
    losses = accuracy_losses(rows)
    assert losses["topk-0.1-lenet-s0"] == pytest.approx(0.1) and losses["topk-0.1-lenet-s1"] == pytest.approx(0.3)
    assert losses["topk-0.1-snn-lenet-s0"] is None  # no undefended SNN twin at seed 0
    assert group_loss(rows[2:4], losses) == pytest.approx((0.2, 0.1, 0.3))


def test_matched_pairs_take_the_nearest_lenet_loss_and_read_the_intervals():
    leaky, tight, blank = [0.9, 0.92, 0.95, 0.97, 0.99], [0.50, 0.51, 0.52, 0.53, 0.54], [0.6, 0.7, 0.8]
    rows = [record("none", None, f, 0, 0.9, leaky) for f in FLEETS]
    rows += [record("topk", 0.5, "lenet", 0, 0.87, leaky), record("topk", 0.1, "lenet", 0, 0.6, tight),
             record("topk", 0.1, "snn-lenet", 0, 0.62, tight), record("topk", 0.5, "snn-lenet", 0, 0.89, blank)]
    pairs = {p["snn"]: p for p in matched_pairs(grouped(rows), accuracy_losses(rows), "idlg", "topk")}
    strong = pairs[("topk", 0.1, "snn-lenet")]
    assert strong["ann"] == ("topk", 0.1, "lenet") and strong["gap"] == pytest.approx(0.02)
    assert strong["difference"].value == pytest.approx(0.0) and pair_verdict(strong) == "no clear difference"
    assert strong["overlap"]
    weak = pairs[("topk", 0.5, "snn-lenet")]  # LeNet's none (loss 0) is nearer, but the same strength is within tolerance
    assert weak["ann"] == ("topk", 0.5, "lenet") and pair_verdict(weak) == "SNN leaks less" and not weak["overlap"]
    assert weak["difference"].value == pytest.approx(0.7 - 0.95) and weak["difference"].high < 0
    assert pair_verdict(pairs[("none", None, "snn-lenet")]) == "no clear difference"
    text = paragraph("idlg", [{**p, "defense": "topk"} for p in pairs.values()])
    assert "Of 2 matched defended pairs, SNN-LeNet leaks less (difference interval below 0) in 1" in text
    assert "the difference interval spans 0 in 1" in text
    below = [0.1, 0.15, 0.2, 0.25]  # under the 0.3 label-only guess: nothing beyond the label for either fleet
    rows = [record("none", None, f, 0, 0.9, below) for f in FLEETS]
    (none,) = matched_pairs(grouped(rows), accuracy_losses(rows), "idlg", "topk")
    assert pair_verdict(none) == "neither above label-only"


def test_median_difference_interval_brackets_the_shift():
    diff = median_difference([0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 1.0])
    assert diff.value == pytest.approx(0.5) and diff.low <= 0.5 <= diff.high and diff.low > 0


def test_report_has_a_curve_per_defense_and_attack_a_row_per_point_and_a_paragraph(tmp_path):
    rows = [record("none", None, f, 0, 0.9, [0.8, 0.85, 0.9]) for f in FLEETS]
    rows += [record("dp-client-fixed", s, f, 0, 0.9 - s / 4, [0.8 - 0.5 * s, 0.7, 0.75]) for s in (0.1, 1.0) for f in FLEETS]
    for r in rows:
        r["leakage"].append(leakage_line([0.5, 0.6], attack="learned"))
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = write_report(tmp_path).read_text()
    for attack in ("idlg", "learned"):
        assert (tmp_path / f"curve-dp-client-fixed-{attack}.png").exists()
        assert f"**{attack}.** Comparison at matched accuracy loss" in text
    assert text.count("| dp-client-fixed | 0.1 |") == 2 * 2 and text.count("| none | - |") == 2 * 2
    assert "Of 2 matched defended pairs" in text
