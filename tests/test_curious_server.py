"""The curious server: passive, attacker-view only, failures recorded (Ray-free)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict
from flower_grid import InMemoryGrid

import attacks.batched.engine as engine
import server.curious as curious
from attacks import ATTACKS, ObservedUpdate, Reconstruction
from clients.client_app import app as client_app
from fedsnn.errors import TrainingFailed
from fedsnn.experiment.runs import read_jsonl
from server.server_app import main as server_main

FAST_ATTACK = {"attack-iterations": 3, "attack-samples": 2}  # deterministic stops, no wall-clock guard


def run(run_config: dict, nodes: int = 2, fail: set[int] = frozenset()):
    grid = InMemoryGrid(client_app, nodes, run_config, fail)
    server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config))
    (run_dir,) = list(Path(run_config["output-dir"]).iterdir())
    return grid, run_dir


def test_global_model_is_bit_identical_with_attacks_on_and_off(tmp_path, tiny_run_config):
    off = {**tiny_run_config, "attacks": "none", "output-dir": str(tmp_path / "off")}
    on = {**tiny_run_config, **FAST_ATTACK, "attacks": "dlg,idlg", "output-dir": str(tmp_path / "on")}
    _, dir_off = run(off)
    _, dir_on = run(on)
    model_off, model_on = torch.load(dir_off / "global_model.pt"), torch.load(dir_on / "global_model.pt")
    assert model_off.keys() == model_on.keys()
    assert all(torch.equal(model_off[k], model_on[k]) for k in model_off)
    acc = lambda d: [r["test-accuracy"] for r in read_jsonl(d / "metrics.jsonl")]  # noqa: E731
    assert acc(dir_off) == acc(dir_on)
    assert len(read_jsonl(dir_on / "leakage.jsonl")) == 2 * 2 * 2  # rounds x clients x attacks
    assert not (dir_off / "leakage.jsonl").exists()


def test_leakage_lines_are_scored_and_complete(tmp_path, tiny_run_config, caplog):
    cfg = {**tiny_run_config, **FAST_ATTACK, "attacks": "idlg", "mode": "fedsgd", "batch-size": 2,
           "attack-rounds": "last", "judge": "auto", "output-dir": str(tmp_path / "r")}
    with caplog.at_level(logging.INFO, logger="fedsnn"):
        _, run_dir = run(cfg)
    (round_line,) = [m for m in caplog.messages if m.startswith("leakage round 2 idlg")]
    assert "gain over label-only guess: SSIM" in round_line and "label-only floor" in round_line and "ceiling" in round_line
    lines = read_jsonl(run_dir / "leakage.jsonl")
    assert {line["round"] for line in lines} == {2} and {line["partition"] for line in lines} == {0, 1}
    for line in lines:
        assert line["status"] in ("converged", "budget") and line["model"] == "lenet"
        assert len(line["samples"]) == 2 and 0 <= line["summary"]["success_rate"] <= 1
        assert {"psnr", "ssim", "mse", "l2", "label_correct"} <= set(line["samples"][0])
        assert line["judge"] is None and "asr" in line["summary"]  # the judge was trained and used
        assert (run_dir / "reconstructions" / f"r002-p{line['partition']}-idlg.pt").exists()
        assert set(line["controls"]) == {"mean_image", "label_only", "initial"} and "test split" in line["controls-source"]
        assert all(len(c["samples"]) == 2 for c in line["controls"].values())
        for sample, control, gain in zip(line["samples"], line["controls"]["label_only"]["samples"],
                                         line["gains-over-label-only"]):
            assert gain["psnr"] == pytest.approx(sample["psnr"] - control["psnr"], abs=1e-9)
        assert 0 <= line["label-multiset-accuracy"] <= 1 and line["time-guard-fired"] is False
        assert line["tolerance"] == 1e-6


def test_failed_attack_and_failed_client_are_recorded(tmp_path, tiny_run_config, monkeypatch):
    def explode(observed, config):
        raise RuntimeError("attack blew up")

    monkeypatch.setitem(ATTACKS, "dlg", explode)
    monkeypatch.setattr(engine, "BATCHED", frozenset())  # one at a time, through the registry
    cfg = {**tiny_run_config, **FAST_ATTACK, "attacks": "dlg", "output-dir": str(tmp_path / "f")}
    with pytest.raises(TrainingFailed, match="partition 2 failed in every round"):  # the run fails, records stay
        run(cfg, nodes=3, fail={2})
    (run_dir,) = list(Path(cfg["output-dir"]).iterdir())
    lines = read_jsonl(run_dir / "leakage.jsonl")
    assert lines and all(line["status"] == "failed" and "attack blew up" in line["reason"] for line in lines)
    assert {line["partition"] for line in lines} == {0, 1}  # the crashed client sent nothing to attack
    rounds = read_jsonl(run_dir / "metrics.jsonl")
    assert rounds[-1]["round"] == 2 and rounds[-1]["clients-failed"][0]["partition"] == 2


def test_attacks_receive_only_the_servers_view(tmp_path, tiny_run_config, monkeypatch):
    seen: list[ObservedUpdate] = []
    real = curious.reconstruct_many

    def spy(observed, config, attack, **kwargs):
        seen.extend(observed)
        return real(observed, config, attack, **kwargs)

    monkeypatch.setattr(curious, "reconstruct_many", spy)
    cfg = {**tiny_run_config, **FAST_ATTACK, "attacks": "idlg", "attack-rounds": "1", "output-dir": str(tmp_path / "v")}
    grid, _ = run(cfg)
    assert len(seen) == 2
    fields = {f.name for f in dataclasses.fields(ObservedUpdate)}
    assert fields == {"spec", "global_weights", "client_weights", "mode", "lr", "local_steps", "batch_size",
                      "num_examples", "labels", "modality"}
    for observed in seen:
        assert observed.labels is None  # labels are not known: the attack must infer them
        assert set(observed.global_weights) == set(observed.client_weights)
        assert all(w.shape != (1, 28, 28) for w in observed.client_weights.values())
    # what travelled: weights, counts and declared metadata; no sample tensor
    for msg in grid.sent:
        for name, record in msg.content.items():
            assert isinstance(record, (ArrayRecord, ConfigRecord, MetricRecord)), name


def test_attack_victims_turns_a_broken_batch_into_failed_records(monkeypatch):
    def broken(observed, config, attack, workers=1):
        raise ValueError("nope")

    monkeypatch.setattr(curious, "reconstruct_many", broken)
    recs = curious.attack_victims("idlg", [None, None], None, workers=1)
    assert len(recs) == 2 and all(isinstance(r, Reconstruction) and r.status == "failed" and "nope" in r.reason for r in recs)
