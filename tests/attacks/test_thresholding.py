"""Algorithms 1 and 2 of the FL-SNN paper: binary spike reconstructions."""

from __future__ import annotations

import pytest
import torch

import attacks
from attacks.core import AttackConfig
from attacks.gradient import TAUS, binarise, sweep
from attacks.gradient.thresholding import binarise_
from fedsnn.task.models import ModelSpec

EVENTS = ModelSpec("snn-lenet", (2, 8, 8), 5, timesteps=3)


def is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


@pytest.fixture()
def event_update(make_update):
    g = torch.Generator().manual_seed(1)
    frames = (torch.rand(1, 3, 2, 8, 8, generator=g) < 0.3).float()  # [B, T, C, H, W]
    return make_update(EVENTS, frames, torch.tensor([2]), modality="events")


def test_binarise_is_a_strict_threshold() -> None:
    x = torch.tensor([0.1, 0.5, 0.50001, 0.9])
    assert binarise(x, 0.5).tolist() == [0.0, 0.0, 1.0, 1.0]
    y = x.clone()
    binarise_(y, 0.25)
    assert y.tolist() == [0.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("name", ["dlg", "idlg", "grnn"])
def test_post_thresholding_returns_binary_samples(name: str, event_update) -> None:
    config = AttackConfig(iterations=2, max_eval=3, grnn_iterations=3, thresholding="post", tau=0.1)
    result = attacks.get_attack(name)(event_update, config)
    assert result.status == "budget", result.reason
    assert result.samples.shape == (1, 3, 2, 8, 8) and is_binary(result.samples)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_in_optimisation_thresholding_binarises_after_every_update(optimizer: str, event_update, monkeypatch) -> None:
    # Instrument the optimiser: record whether the dummy is binary when each step
    # begins, i.e. right after the previous update was followed by Algorithm 2.
    cls = torch.optim.Adam if optimizer == "adam" else torch.optim.LBFGS
    original_step, seen = cls.step, []

    def recording_step(self, closure=None):
        seen.append(is_binary(self.param_groups[0]["params"][0].detach()))
        return original_step(self, closure)

    monkeypatch.setattr(cls, "step", recording_step)
    config = AttackConfig(optimizer=optimizer, lr=0.1, iterations=6, max_eval=3, thresholding="in", tau=0.05,
                          stall_patience=0)
    result = attacks.get_attack("idlg")(event_update, config)
    assert result.status in ("budget", "converged"), result.reason
    assert len(seen) == result.iterations >= 2
    assert seen[0] is False and all(seen[1:])  # the |N(0, 0.1)| init is not binary; every later state is
    assert is_binary(result.samples)


def test_in_thresholding_is_refused_by_grnn_with_a_reason(event_update) -> None:
    result = attacks.get_attack("grnn")(event_update, AttackConfig(grnn_iterations=2, thresholding="in"))
    assert result.status == "failed" and "GRNN" in result.reason


def test_sweep_covers_every_algorithm_and_tau(event_update) -> None:
    config = AttackConfig(optimizer="adam", lr=0.1, iterations=2)
    results = sweep(attacks.get_attack("idlg"), event_update, config, taus=(0.1, 0.5))
    assert set(results) == {("post", 0.1), ("post", 0.5), ("in", 0.1), ("in", 0.5)}
    assert all(is_binary(r.samples) for r in results.values())
    assert results[("post", 0.5)].diagnostics["tau"] == 0.5
    assert TAUS == (0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
