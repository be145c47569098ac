"""One real `flwr run` (local SuperLink, Ray simulation): 2 supernodes, 2 rounds, attacks on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedsnn.launch import main as launch
from fedsnn.experiment.reporting import compare
from fedsnn.experiment.runs import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flower
def test_flwr_run_writes_metrics_leakage_and_gamin(tmp_path):
    out = tmp_path / "runs"
    settings = (f"num-rounds=2 eval-samples=200 local-steps=10 name='smoke' output-dir='{out}' "
                "attacks='idlg' attack-samples=2 attack-iterations=5 attack-time-budget=10.0 judge='none' "
                "gamin-rounds='last' gamin-budget=256 gamin-classes='0,1'")
    assert launch([str(ROOT), "--run-config", settings]) == 0
    (run_dir,) = list(out.iterdir())
    assert run_dir.name.endswith("-smoke")
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in records] == [0, 1, 2]
    assert all(r["clients-ok"] == 2 for r in records[1:])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run-config"]["num-rounds"] == 2 and config["versions"]["flwr"].startswith("1.41")
    assert json.loads((run_dir / "partitions.json").read_text())["num-partitions"] == 2
    leakage = read_jsonl(run_dir / "leakage.jsonl")
    assert sorted((line["round"], line["partition"]) for line in leakage) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(line["status"] in ("converged", "budget") and len(line["samples"]) == 2 for line in leakage)
    assert [line["class"] for line in read_jsonl(run_dir / "gamin.jsonl")] == [0, 1]
    assert (run_dir / "global_model.pt").exists()
    report = compare({"lenet": run_dir}, tmp_path / "report")
    assert "| lenet | 2 | idlg |" in report.read_text() and (tmp_path / "report" / "leakage.png").exists()


@pytest.mark.flower
def test_a_run_that_fails_inside_flower_exits_non_zero(tmp_path):
    """`flwr run --stream` exits 0 when the ServerApp fails; fedsnn-run must not.
    Here the ServerApp cannot create its run folder (output-dir is a file)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert launch([str(ROOT), "--run-config", f"output-dir='{blocker}' attacks='none' gamin-rounds='none'"]) == 1
