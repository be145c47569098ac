"""The adaptive attacks in the federation: curious server on the in-memory grid, the attacker's view,
the declared auxiliary data and its disjointness from every shard."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from flwr.app import Context, RecordDict
from flower_grid import InMemoryGrid

import server.curious as curious
from attacks import AttackConfig, AuxiliaryData, ObservedUpdate
from clients.client_app import app as client_app
from fedsnn.experiment.auxiliary import auxiliary_data, check_disjoint
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import dataset_for, shards
from fedsnn.experiment.runs import read_jsonl
from server.server_app import main as server_main

ADAPTIVE = {"attacks": "analytic,learned,ig", "mode": "fedsgd", "batch-size": 1, "attack-rounds": "last",
            "attack-iterations": 3, "attack-samples": 0}


def _small(monkeypatch) -> None:
    """The default decoder trains on 5,000 samples for 30 epochs; a test needs far less."""
    real = curious.attack_config
    monkeypatch.setattr(curious, "attack_config", lambda cfg, aux=None: replace(
        real(cfg, aux), learned_samples=200, learned_epochs=2, learned_hidden=32))


def _run(run_config: dict) -> Path:
    grid = InMemoryGrid(client_app, 2, run_config)
    server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config))
    (run_dir,) = list(Path(run_config["output-dir"]).iterdir())
    return run_dir


def test_curious_server_runs_every_adaptive_attack(tmp_path, tiny_run_config, monkeypatch, caplog):
    _small(monkeypatch)
    seen: list[tuple] = []
    real = curious.GROUPED["learned"]

    def spy(observed, config):
        seen.append((list(observed), config))
        return real(observed, config)

    monkeypatch.setitem(curious.GROUPED, "learned", spy)
    with caplog.at_level("INFO", logger="fedsnn"):
        run_dir = _run({**tiny_run_config, **ADAPTIVE, "output-dir": str(tmp_path / "r")})
    assert any("learned on lenet:" in m and "gain over label-only guess: SSIM" in m for m in caplog.messages)
    lines = read_jsonl(run_dir / "leakage.jsonl")
    assert sorted((line["attack"], line["partition"]) for line in lines) == sorted(
        (a, p) for a in ("analytic", "learned", "ig") for p in (0, 1))
    by = {(line["attack"], line["partition"]): line for line in lines}
    for p in (0, 1):
        assert "label_only" in by[("learned", p)]["controls"]  # the control, scored like the attack
        assert len(by[("learned", p)]["gains-over-label-only"]) == len(by[("learned", p)]["samples"])
        assert by[("analytic", p)]["status"] == "converged" and by[("analytic", p)]["diagnostics"]["analytic"]["rank"] == 1
        assert by[("learned", p)]["status"] == "converged" and "summary" in by[("learned", p)]
        assert "test split" in by[("learned", p)]["diagnostics"]["auxiliary"]
        assert by[("ig", p)]["status"] in ("budget", "converged") and "summary" in by[("ig", p)]
    # one call for the round: both clients share the decoder; the attack got updates and the declared data only
    (observed, config), = seen
    assert len(observed) == 2 and all(isinstance(o, ObservedUpdate) and o.labels is None for o in observed)
    assert by[("learned", 0)]["diagnostics"]["decoder"]["victims"] == 2
    assert isinstance(config.auxiliary, AuxiliaryData)
    cfg = RunConfig.from_mapping({**tiny_run_config, **ADAPTIVE})
    check_disjoint(config.auxiliary, cfg, 2)  # no auxiliary sample is any client's


def test_other_attacks_do_not_receive_the_auxiliary_data(monkeypatch):
    got = []
    monkeypatch.setattr(curious, "reconstruct_many", lambda observed, config, name, workers=1: got.append(config) or [])
    aux = AuxiliaryData(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), 2, "x")
    curious.attack_victims("idlg", [], AttackConfig(auxiliary=aux), workers=1)
    assert got[0].auxiliary is None


def test_default_auxiliary_data_is_disjoint_from_every_shard_and_a_shard_sample_is_caught(tiny_run_config):
    cfg = RunConfig.from_mapping(tiny_run_config)
    aux = auxiliary_data(cfg)
    assert len(aux.labels) == len(dataset_for(cfg).test) and "test split" in aux.source
    check_disjoint(aux, cfg, 3)
    train = dataset_for(cfg).train
    leaked_index = int(shards(cfg, 3)[1][0])
    leaked = AuxiliaryData(torch.cat([aux.samples[:5], train.samples[leaked_index:leaked_index + 1]]),
                           torch.cat([aux.labels[:5], train.labels[leaked_index:leaked_index + 1]]), aux.num_classes, "leaky")
    with pytest.raises(ValueError, match="shares 1 samples"):
        check_disjoint(leaked, cfg, 3)
