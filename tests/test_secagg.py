"""defense='secagg': Flower's SecAgg+ through the real ClientApp and ServerApp on the in-memory grid.

The curious server receives only the unmasked average of the round; it attacks
that one update, scored against the union of the clients' batches; with
attacks on and off the released model is bit-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from flwr.app import Context, RecordDict
from flower_grid import InMemoryGrid

import server.secagg as secagg_server
from clients.client_app import app as client_app
from fedsnn.errors import RunConfigError
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import client_train, initial_model
from fedsnn.experiment.ground_truth import ground_truth
from fedsnn.experiment.runs import read_jsonl
from fedsnn.experiment.secagg import SecAggPlan, quantization_step, secagg_plan
from server.server_app import main as server_main

FAST_ATTACK = {"attacks": "idlg", "attack-iterations": 2, "attack-time-budget": 10.0, "attack-samples": 2}


def run(run_config: dict, nodes: int = 2) -> tuple[Path, InMemoryGrid]:
    grid = InMemoryGrid(client_app, nodes, run_config)
    server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config))
    (run_dir,) = list(Path(run_config["output-dir"]).iterdir())
    return run_dir, grid


@pytest.fixture()
def secagg_config(tiny_run_config):
    return {**tiny_run_config, "defense": "secagg", "mode": "fedsgd", "batch-size": 4}


@pytest.fixture()
def observed_aggregates(monkeypatch):
    """Every (sent, aggregate, ObservedUpdate) the curious SecAgg server handed to an attack."""
    seen = []
    real = secagg_server.aggregate_observation

    def spy(cfg, sent, aggregate, declared, num_examples):
        observed = real(cfg, sent, aggregate, declared, num_examples)
        seen.append(observed)
        return observed

    monkeypatch.setattr(secagg_server, "aggregate_observation", spy)
    return seen


def test_global_model_is_bit_identical_with_attacks_on_and_off(secagg_config, tmp_path):
    dir_off, _ = run({**secagg_config, "output-dir": str(tmp_path / "off")})
    dir_on, _ = run({**secagg_config, **FAST_ATTACK, "output-dir": str(tmp_path / "on")})
    off, on = torch.load(dir_off / "global_model.pt"), torch.load(dir_on / "global_model.pt")
    assert all(torch.equal(off[k], on[k]) and off[k].dtype == torch.float32 for k in off)
    leakage = read_jsonl(dir_on / "leakage.jsonl")
    assert [(line["round"], line["partition"], line["partitions"]) for line in leakage] == [(1, "aggregate", [0, 1]),
                                                                                             (2, "aggregate", [0, 1])]
    plain, _ = run({**secagg_config, "defense": "none", "output-dir": str(tmp_path / "none")})
    none = torch.load(plain / "global_model.pt")
    assert not all(torch.equal(off[k], none[k]) for k in off)  # SecAgg+ quantises: not plain FedAvg's bits


def test_server_sees_only_the_quantised_average_of_the_round(secagg_config, observed_aggregates, tmp_path):
    cfg_map = {**secagg_config, **FAST_ATTACK, "num-rounds": 1, "output-dir": str(tmp_path / "r")}
    run(cfg_map)
    (observed,) = observed_aggregates
    cfg = RunConfig.from_mapping(cfg_map)
    sent = initial_model(cfg).state_dict()
    assert all(torch.equal(observed.global_weights[k], sent[k]) for k in sent)
    updates = [client_train(cfg, sent, p, 2, 1) for p in (0, 1)]
    total = sum(u.num_examples for u in updates)
    mean = {k: sum(u.state[k].double() * u.num_examples for u in updates) / total for k in sent}
    step = quantization_step(cfg, [u.num_examples for u in updates])
    for k in sent:
        error = (observed.client_weights[k].double() - mean[k]).abs().max().item()
        assert error <= 2 * step  # one stochastic-rounding level per client, over the summed weight
        assert all((observed.client_weights[k] - u.state[k]).abs().max() > 10 * step for u in updates)  # no client's own
    assert (observed.mode, observed.batch_size, observed.num_examples, observed.local_steps) == ("fedsgd", 8, 8, 1)


def test_aggregate_is_scored_against_the_union_of_the_clients_batches(secagg_config, tmp_path):
    cfg_map = {**secagg_config, **FAST_ATTACK, "num-rounds": 1, "output-dir": str(tmp_path / "r")}
    run_dir, _ = run(cfg_map)
    (line,) = read_jsonl(run_dir / "leakage.jsonl")
    cfg = RunConfig.from_mapping(cfg_map)
    union = [y for p in (0, 1) for y in ground_truth(cfg, p, 2, 1).labels.tolist()]
    assert line["client-samples"] == 8 and line["true-labels"] == union and len(line["samples"]) == 2
    assert line["defense"]["defense"] == "secagg" and line["defense"]["reconstruction-threshold"] == 2
    config = json.loads((run_dir / "config.json").read_text())
    assert config["defense"] == {"defense": "secagg", "num-shares": 0, "reconstruction-threshold": 2, "clipping-range": 8.0,
                                 "quantization-range": 4194304, "max-weight": 1000.0, "modulus-range": 2**32}
    rounds = read_jsonl(run_dir / "metrics.jsonl")
    assert rounds[1]["clients-ok"] == 2 and rounds[1]["secagg-clipped-entries"] == 0
    assert (run_dir / "reconstructions" / "r001-pagg-idlg.pt").exists()


@pytest.mark.parametrize(("settings", "key"), [
    ({"num-shares": 1}, "num-shares"),
    ({"num-shares": 3, "reconstruction-threshold": 4}, "reconstruction-threshold"),
    ({"reconstruction-threshold": 1}, "reconstruction-threshold"),
    ({"quantization-range": 2**32}, "quantization-range"),
    ({"clipping-range": 0.0}, "clipping-range"),
])
def test_bad_secagg_settings_name_the_key(settings, key):
    with pytest.raises(RunConfigError, match=f"'{key}'"):
        RunConfig.from_mapping({"defense": "secagg", **settings})


@pytest.mark.parametrize(("settings", "clients", "key", "valid"), [
    ({"num-shares": 3}, 2, "num-shares", "from 3 to 2"),
    ({"num-shares": 4}, 5, "num-shares", "odd integer from 3 to 4"),
    ({"reconstruction-threshold": 4}, 3, "reconstruction-threshold", "from 2 to 3"),
    ({"fraction-train": 0.2}, 4, "fraction-train", "at least 2 of the 4"),
    ({"quantization-range": 2**31}, 3, "quantization-range", str(2**32 // 3)),
])
def test_shares_are_checked_against_the_clients_of_a_round(settings, clients, key, valid):
    with pytest.raises(RunConfigError, match=f"'{key}'.*{valid}"):
        secagg_plan(RunConfig.from_mapping({"defense": "secagg", **settings}), clients)


def test_plan_hands_flower_arguments_that_give_the_checked_sizes():
    """Flower reads an int share count only above 2 and an int threshold only below the shares;
    floats are fractions (SecAggPlusWorkflow.setup_stage: round(fraction * n))."""
    assert secagg_plan(RunConfig(defense="secagg"), 2) == SecAggPlan(2, 2, 2)
    assert SecAggPlan(2, 2, 2).workflow_args == (1.0, 1.0)
    assert SecAggPlan(5, 3, 2).workflow_args == (3, 2)
    assert SecAggPlan(5, 5, 3).workflow_args == (1.0, 3)
    assert SecAggPlan(7, 5, 5).workflow_args == (5, 1.0)


def test_bad_shares_stop_the_run_before_any_client_trains(secagg_config, tmp_path):
    cfg = {**secagg_config, "num-shares": 3, "output-dir": str(tmp_path / "r")}
    grid = InMemoryGrid(client_app, 2, cfg)
    with pytest.raises(RunConfigError, match="'num-shares': got 3; expected 0 or an integer from 3 to 2"):
        server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=cfg))
    assert {m.metadata.message_type for m in grid.sent} == {"query"}  # only the partition query went out
