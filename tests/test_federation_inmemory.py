"""A Ray-free federation: the real ServerApp main and ClientApp over an in-memory grid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from flwr.app import Context, RecordDict
from flower_grid import InMemoryGrid

from clients.client_app import app as client_app
from fedsnn.errors import TrainingFailed
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import client_train, initial_model, sample_partitions
from fedsnn.experiment.runs import read_jsonl
from server.server_app import main as server_main


def run_inmemory(run_config: dict, nodes: int = 3, fail: set[int] = frozenset()):
    grid = InMemoryGrid(client_app, nodes, run_config, fail)
    server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config))
    (run_dir,) = list(Path(run_config["output-dir"]).iterdir())
    return grid, run_dir


def test_round_writes_run_folder(tiny_run_config):
    grid, run_dir = run_inmemory(tiny_run_config)
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in records] == [0, 1, 2]
    assert all(r["clients-ok"] == 3 for r in records[1:])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run-config"]["num-rounds"] == 2
    assert "torch" in config["versions"] and config["code_version"]
    partitions = json.loads((run_dir / "partitions.json").read_text())
    assert sum(partitions["sizes"]) == 5000
    assert (run_dir / "metrics.csv").read_text().splitlines()[0].startswith("round,")


def test_failed_client_is_recorded_and_round_goes_on(tiny_run_config):
    """The rounds go on without the failed client; failing in every round fails the run."""
    with pytest.raises(TrainingFailed, match="partition 1 failed in every round.*injected"):
        run_inmemory(tiny_run_config, nodes=3, fail={1})
    (run_dir,) = list(Path(tiny_run_config["output-dir"]).iterdir())
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in records] == [0, 1, 2] and records[2]["clients-ok"] == 2
    assert records[1]["clients-ok"] == 2
    assert records[1]["clients-failed"][0]["partition"] == 1
    assert "injected" in records[1]["clients-failed"][0]["reason"]


def test_bad_config_stops_before_any_client_trains(tiny_run_config):
    grid = InMemoryGrid(client_app, 2, tiny_run_config)
    bad = {**tiny_run_config, "model": "resnet"}
    with pytest.raises(ValueError, match="model"):
        server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=bad))
    assert grid.sent == []


def test_fedsgd_update_is_lr_times_gradient():
    cfg = RunConfig(mode="fedsgd", batch_size=4)
    state = initial_model(cfg).state_dict()
    update = client_train(cfg, state, partition_id=0, num_partitions=2, server_round=1)
    assert update.declared["local-steps"] == 1 and update.num_examples == 4
    changed = [k for k in state if not torch.equal(state[k], update.state[k])]
    assert changed == list(state)  # every parameter moved by -lr * grad


def test_both_fleets_sample_the_same_partitions():
    lenet, snn = RunConfig(model="lenet", fraction_train=0.5), RunConfig(model="snn-lenet", fraction_train=0.5)
    for r in range(1, 5):
        assert sample_partitions(lenet, r, list(range(10))) == sample_partitions(snn, r, list(range(10)))
    picks = {tuple(sample_partitions(lenet, r, list(range(10)))) for r in range(1, 5)}
    assert len(picks) > 1 and all(len(p) == 5 for p in picks)
