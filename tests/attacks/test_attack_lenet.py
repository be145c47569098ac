"""DLG, iDLG and GRNN on LeNet in the faithful setting (U(-0.5, 0.5) init, 28x28)."""

from __future__ import annotations

import math

import torch

import attacks
from attacks.core import AttackConfig
from attacks.gradient import infer_labels
from fedsnn.task.models import ModelSpec

LENET = ModelSpec("lenet", (1, 28, 28), 10)


def psnr_db(reconstructed: torch.Tensor, original: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / float(((reconstructed - original) ** 2).mean()))


def test_idlg_rebuilds_a_digit_and_its_label(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = make_update(LENET, x[:1], y[:1], seed=0)
    result = attacks.get_attack("idlg")(observed, AttackConfig(seed=0))
    assert result.status == "converged", result.reason
    assert result.samples.shape == (1, 1, 28, 28)
    assert result.labels.tolist() == y[:1].tolist()
    assert psnr_db(result.samples, x[:1]) > 30
    assert result.evaluations < 2000 and result.final_loss < 1e-6


def test_dlg_learns_the_label_with_its_input(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = make_update(LENET, x[:1], y[:1], seed=1)  # a model seed on which DLG converges
    result = attacks.get_attack("dlg")(observed, AttackConfig(seed=0))
    assert result.status == "converged", result.reason
    assert result.labels.tolist() == y[:1].tolist()
    assert psnr_db(result.samples, x[:1]) > 30


def test_idlg_label_rule_on_single_samples(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    for i in range(4):
        observed = make_update(LENET, x[i : i + 1], y[i : i + 1], seed=i)
        assert infer_labels(observed.observed_gradient(), "fc", 1).tolist() == [int(y[i])]


def test_idlg_batch_label_rule_recovers_distinct_and_repeated_labels(make_update, mnist_digits) -> None:
    x, _ = mnist_digits
    for labels in ([3, 1, 4, 5], [2, 2, 6, 9]):
        observed = make_update(LENET, x[:4], torch.tensor(labels), seed=0)
        result = attacks.get_attack("idlg")(observed, AttackConfig(iterations=1, max_eval=1))
        assert sorted(result.labels.tolist()) == sorted(labels), result.reason


def test_batch_label_rule_without_a_prediction_estimate_takes_negative_bias_classes() -> None:
    gradient = {"fc.weight": torch.zeros(5, 3), "fc.bias": torch.tensor([0.1, -0.3, 0.2, -0.1, 0.1])}
    # classes 1 and 3 are present; the third slot goes to the most negative (1: 0.3/2 > 0.1/2)
    assert infer_labels(gradient, "fc", 3).tolist() == [1, 1, 3]
    estimate = torch.tensor([0.1, 0.2, 0.2, 0.4, 0.1])  # counts = 3 * (m - db) -> [0, 1.5, 0, 1.5, 0] -> 1.5 each
    assert sorted(infer_labels(gradient, "fc", 3, estimate).tolist()) in ([1, 1, 3], [1, 3, 3])


def test_given_labels_are_used_instead_of_inferred(make_update, mnist_digits) -> None:
    import dataclasses

    x, y = mnist_digits
    observed = dataclasses.replace(make_update(LENET, x[:2], y[:2]), labels=(5, 6))
    for name in ("dlg", "idlg", "grnn"):
        result = attacks.get_attack(name)(observed, AttackConfig(iterations=1, max_eval=2, grnn_iterations=2))
        assert result.labels.tolist() == [5, 6], name


def test_grnn_runs_end_to_end_and_crops_to_28x28(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    result = attacks.get_attack("grnn")(make_update(LENET, x[:2], y[:2]), AttackConfig(grnn_iterations=20))
    assert result.status == "budget", result.reason
    assert result.samples.shape == (2, 1, 28, 28) and result.labels.shape == (2,)
    assert 0 <= float(result.samples.min()) and float(result.samples.max()) <= 1
    assert result.loss_history[-1] < result.loss_history[0]


def test_fedavg_replay_runs_end_to_end(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = make_update(LENET, x[:4], y[:4], local_steps=2, batch_size=2, mode="fedavg")
    result = attacks.get_attack("idlg")(observed, AttackConfig(iterations=2, max_eval=3, fedavg_handling="replay"))
    assert result.ok and result.samples.shape == (4, 1, 28, 28)
