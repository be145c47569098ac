"""Each defense through the real ClientApp and ServerApp on the in-memory grid (Ray-free).

The curious server attacks what reaches it after the defense; with attacks
on and off the released model is bit-identical under every defense (noise seeded).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Context, RecordDict
from flower_grid import InMemoryGrid

import server.curious as curious
from clients.client_app import app as client_app
from fedsnn.experiment.runs import read_jsonl
from fedsnn.task.defenses import global_norm, update_between
from server.server_app import main as server_main

FAST_ATTACK = {"attacks": "idlg", "attack-iterations": 2, "attack-time-budget": 10.0, "attack-samples": 1}
DEFENSES = {
    "dp-client-fixed": {"clip-norm": 0.5, "noise-multiplier": 0.3},
    "dp-server-fixed": {"clip-norm": 0.5, "noise-multiplier": 0.3},
    "local-dp": {"clip-norm": 0.5, "ldp-epsilon": 2.0},
    "dp-sgd": {"clip-norm": 0.5, "noise-multiplier": 0.5},
    "topk": {"topk-fraction": 0.05},
    "quantize": {"quant-bits": 3},
}


def run(run_config: dict, nodes: int = 2) -> Path:
    grid = InMemoryGrid(client_app, nodes, run_config)
    server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config))
    (run_dir,) = list(Path(run_config["output-dir"]).iterdir())
    return run_dir


@pytest.fixture()
def observed_updates(monkeypatch):
    """Every update the curious server handed to an attack, as (sent, received) state dicts."""
    seen: list[dict[str, torch.Tensor]] = []
    real = curious.observe

    def spy(cfg, sent, reply):
        observed = real(cfg, sent, reply)
        seen.append(update_between(observed.global_weights, observed.client_weights))
        return observed

    monkeypatch.setattr(curious, "observe", spy)
    return seen


@pytest.mark.parametrize("defense", sorted(DEFENSES))
def test_global_model_is_bit_identical_with_attacks_on_and_off(defense, tmp_path, tiny_run_config):
    base = {**tiny_run_config, "defense": defense, **DEFENSES[defense], "mode": "fedsgd", "batch-size": 4}
    dir_off = run({**base, "output-dir": str(tmp_path / "off")})
    dir_on = run({**base, **FAST_ATTACK, "output-dir": str(tmp_path / "on")})
    off, on = torch.load(dir_off / "global_model.pt"), torch.load(dir_on / "global_model.pt")
    assert all(torch.equal(off[k], on[k]) for k in off)
    assert len(read_jsonl(dir_on / "leakage.jsonl")) == 2 * 2  # rounds x clients: the attack did run
    if "none" not in _UNDEFENDED:  # one undefended run serves every defense
        _UNDEFENDED["none"] = torch.load(run({**base, "defense": "none", "output-dir": str(tmp_path / "none")}) / "global_model.pt")
    assert not all(torch.equal(off[k], _UNDEFENDED["none"][k]) for k in off)  # the defense changed something


_UNDEFENDED: dict[str, dict[str, torch.Tensor]] = {}


@pytest.mark.parametrize("defense", ["dp-client-fixed", "dp-server-fixed"])
def test_central_dp_server_sees_updates_clipped_to_the_norm(defense, observed_updates, tmp_path, tiny_run_config):
    clip = 0.05  # far below LeNet's update norm after 5 local steps
    run({**tiny_run_config, **FAST_ATTACK, "defense": defense, "clip-norm": clip, "noise-multiplier": 1.0,
         "output-dir": str(tmp_path / "r")})
    assert len(observed_updates) == 4
    assert all(global_norm(u) == pytest.approx(clip, rel=1e-3) for u in observed_updates)


def test_central_dp_noise_has_the_configured_scale(tmp_path, tiny_run_config):
    """Released model minus the noiseless average of clipped updates is N(0, (sigma C / n)^2)."""
    clip, sigma = 0.05, 2.0
    cfg = {**tiny_run_config, "num-rounds": 1, "defense": "dp-client-fixed", "clip-norm": clip}
    noiseless = torch.load(run({**cfg, "noise-multiplier": 1e-9, "output-dir": str(tmp_path / "a")}) / "global_model.pt")
    noisy = torch.load(run({**cfg, "noise-multiplier": sigma, "output-dir": str(tmp_path / "b")}) / "global_model.pt")
    residual = torch.cat([(noisy[k] - noiseless[k]).flatten() for k in noisy]).numpy()
    assert np.std(residual) == pytest.approx(sigma * clip / 2, rel=0.05)


def test_local_dp_server_sees_clipped_update_plus_gaussian_noise(observed_updates, tmp_path, tiny_run_config):
    clip, epsilon, delta = 0.05, 4.0, 1e-5
    run({**tiny_run_config, **FAST_ATTACK, "defense": "local-dp", "clip-norm": clip, "ldp-epsilon": epsilon,
         "dp-delta": delta, "output-dir": str(tmp_path / "r")})
    std = clip * math.sqrt(2 * math.log(1.25 / delta)) / epsilon  # LocalDpMod's Gaussian mechanism
    for update in observed_updates:
        entries = torch.cat([v.flatten() for v in update.values()]).numpy()
        assert np.std(entries) == pytest.approx(std, rel=0.05)  # the clipped signal (norm C) is far smaller


def test_compression_reaches_the_server(observed_updates, tmp_path, tiny_run_config):
    run({**tiny_run_config, **FAST_ATTACK, "defense": "topk", "topk-fraction": 0.02, "output-dir": str(tmp_path / "k")})
    numel = sum(v.numel() for v in observed_updates[0].values())
    for update in observed_updates:
        assert int(sum((v != 0).sum() for v in update.values())) <= math.ceil(0.02 * numel)
    observed_updates.clear()
    run({**tiny_run_config, **FAST_ATTACK, "defense": "quantize", "quant-bits": 2, "output-dir": str(tmp_path / "q")})
    for update in observed_updates:
        assert all(distinct(v) <= 4 for v in update.values())


def distinct(values: torch.Tensor, tol: float = 1e-6) -> int:
    """Distinct values up to float error (the server rebuilds the update as received - sent)."""
    ordered = values.flatten().sort().values
    return 1 + int((ordered.diff() > tol).sum())


def test_epsilon_is_recorded_every_round_and_grows(tmp_path, tiny_run_config):
    run_dir = run({**tiny_run_config, "num-rounds": 3, "defense": "dp-sgd", "output-dir": str(tmp_path / "r")})
    rounds = read_jsonl(run_dir / "metrics.jsonl")
    eps = [r["epsilon"] for r in rounds]
    assert [r["round"] for r in rounds] == [0, 1, 2, 3] and eps[0] == 0.0 and eps == sorted(eps) and eps[1] < eps[3]
    assert all(r["delta"] == 1e-5 and r["dp-unit"] == "sample" for r in rounds)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["defense"] == {"defense": "dp-sgd", "clip-norm": 1.0, "noise-multiplier": 1.0}
