"""One real `flwr run` (local SuperLink, Ray simulation): 2 supernodes, 2 rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedsnn.launch import main as launch
from fedsnn.runs import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flower
def test_flwr_run_writes_a_run_folder(tmp_path):
    out = tmp_path / "runs"
    rc = launch([str(ROOT), "--run-config", f"num-rounds=2 eval-samples=200 local-steps=10 name='smoke' output-dir='{out}'"])
    assert rc == 0
    (run_dir,) = list(out.iterdir())
    assert run_dir.name.endswith("-smoke")
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in records] == [0, 1, 2]
    assert all(r["clients-ok"] == 2 for r in records[1:])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run-config"]["num-rounds"] == 2 and config["versions"]["flwr"].startswith("1.41")
    assert json.loads((run_dir / "partitions.json").read_text())["num-partitions"] == 2
