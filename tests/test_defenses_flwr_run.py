"""One real `flwr run` (local SuperLink, Ray simulation) with central DP and the curious server on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedsnn.experiment.runs import read_jsonl
from fedsnn.launch import main as launch

ROOT = Path(__file__).resolve().parents[1]


def run_two_rounds(out: Path, settings: str) -> tuple[Path, list[dict]]:
    """One real two-client `flwr run` with ``settings``; its run folder and metrics, after checking both clients
    trained in both rounds."""
    assert launch([str(ROOT), "--run-config", settings]) == 0
    (run_dir,) = list(out.iterdir())
    rounds = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in rounds] == [0, 1, 2] and all(r["clients-ok"] == 2 for r in rounds[1:])
    return run_dir, rounds


@pytest.mark.flower
def test_flwr_run_with_client_side_dp_records_epsilon_and_leakage(tmp_path):
    out = tmp_path / "runs"
    settings = (f"defense='dp-client-fixed' clip-norm=0.5 noise-multiplier=0.5 num-rounds=2 mode='fedsgd' "
                f"batch-size=2 eval-samples=100 name='dp' output-dir='{out}' attacks='idlg' attack-samples=2 "
                "attack-iterations=3 attack-time-budget=10.0 judge='none' gamin-rounds='none'")
    run_dir, rounds = run_two_rounds(out, settings)
    assert rounds[0]["epsilon"] == 0.0 < rounds[1]["epsilon"] < rounds[2]["epsilon"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["defense"] == {"defense": "dp-client-fixed", "clip-norm": 0.5, "noise-multiplier": 0.5}
    leakage = read_jsonl(run_dir / "leakage.jsonl")
    assert sorted((line["round"], line["partition"]) for line in leakage) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(line["status"] in ("converged", "budget") for line in leakage)


@pytest.mark.flower
def test_flwr_run_with_secagg_attacks_only_the_aggregate(tmp_path):
    """Flower's SecAgg+ over real message exchange (Ray actors, SuperLink): one leakage line per
    round, for the aggregate of both clients, scored against the union of their batches."""
    out = tmp_path / "runs"
    settings = (f"defense='secagg' num-rounds=2 mode='fedsgd' batch-size=2 eval-samples=100 name='sa' "
                f"output-dir='{out}' attacks='idlg' attack-samples=2 attack-iterations=3 attack-time-budget=10.0 "
                "judge='none' gamin-rounds='none'")
    run_dir, rounds = run_two_rounds(out, settings)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["defense"]["defense"] == "secagg" and config["defense"]["num-shares"] == 0
    leakage = read_jsonl(run_dir / "leakage.jsonl")
    assert [(line["round"], line["partition"], line["partitions"]) for line in leakage] == [
        (1, "aggregate", [0, 1]), (2, "aggregate", [0, 1])]
    assert all(line["client-samples"] == 4 and len(line["samples"]) == 2 for line in leakage)
    assert "aggregate" in (run_dir / "report.md").read_text()
