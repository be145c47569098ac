"""Deterministic budgets: the same seed gives the same record whatever the clock says."""

from __future__ import annotations

import itertools
import time

import torch

from attacks import AttackConfig, reconstruct_many
from attacks.core import TIME_GUARD
from attacks.gradient import idlg
from fedsnn.task.models import ModelSpec

LENET = ModelSpec("lenet", (1, 28, 28), 10)


def _fields(rec):
    return (rec.status, rec.reason, rec.iterations, rec.evaluations, rec.loss_history, rec.labels.tolist())


def _racing_clock(monkeypatch, step: float = 1000.0) -> None:
    """Every reading of the clock is ``step`` seconds after the last (a machine under heavy load)."""
    ticks = itertools.count(step=step)
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))


def test_same_attack_same_record_under_any_clock(make_update, mnist_digits, monkeypatch) -> None:
    x, y = mnist_digits
    config = AttackConfig(iterations=4, max_eval=5)
    single = make_update(LENET, x[:1], y[:1])
    batch = [make_update(LENET, x[i:i + 1], y[i:i + 1], seed=i) for i in range(2)]
    calm = idlg.reconstruct(single, config), reconstruct_many(batch, config, "idlg", seeds=[0, 1])
    _racing_clock(monkeypatch)
    loaded = idlg.reconstruct(single, config), reconstruct_many(batch, config, "idlg", seeds=[0, 1])
    assert _fields(calm[0]) == _fields(loaded[0]) and torch.equal(calm[0].samples, loaded[0].samples)
    for a, b in zip(calm[1], loaded[1]):
        assert _fields(a) == _fields(b) and torch.equal(a.samples, b.samples)
    assert not calm[0].reason.startswith(TIME_GUARD)


def test_a_time_guard_that_fires_says_so(make_update, mnist_digits, monkeypatch) -> None:
    x, y = mnist_digits
    _racing_clock(monkeypatch)
    config = AttackConfig(iterations=50, max_eval=5, time_budget_s=1.0)
    alone = idlg.reconstruct(make_update(LENET, x[:1], y[:1]), config)
    (batched,) = reconstruct_many([make_update(LENET, x[:1], y[:1])], config, "idlg")
    for rec in (alone, batched):
        assert rec.status == "budget" and rec.reason.startswith(TIME_GUARD), rec.reason
