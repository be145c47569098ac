"""The attack API: registry, config validation, what the attacker can (not) be given."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

import attacks
from attacks.core import AttackConfig, ObservedUpdate
from attacks.gradient import GradientMatcher
from fedsnn.errors import ConfigError
from fedsnn.task.models import ModelSpec

LENET = ModelSpec("lenet", (1, 28, 28), 10)
TINY = AttackConfig(iterations=2, max_eval=3, grnn_iterations=2)


def test_registry_lists_every_attack_and_rejects_unknown_names() -> None:
    assert set(attacks.ATTACKS) == {"dlg", "idlg", "grnn", "analytic", "learned", "ig"}
    assert attacks.get_attack("idlg") is attacks.ATTACKS["idlg"]
    with pytest.raises(ConfigError, match="'dlg', 'idlg', 'grnn'"):
        attacks.get_attack("gradinversion")


@pytest.mark.parametrize(
    "field, value", [("optimizer", "sgd"), ("thresholding", "maybe"), ("tau", 1.5), ("iterations", 0),
                     ("fedavg_handling", "guess"), ("dummy_layout", "3d"), ("clamp", True), ("time_budget_s", -1.0)],
)
def test_config_rejects_invalid_values_with_config_error(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        AttackConfig(**{field: value})


def test_no_parameter_or_field_lets_ground_truth_in() -> None:
    # Every attack takes exactly the observation and the config.
    for reconstruct in attacks.ATTACKS.values():
        assert list(inspect.signature(reconstruct).parameters) == ["observed", "config"]
    # The observation holds the model, two weight states, declared training facts and
    # the optional label-knowledge flag: no field can carry samples.
    names = {f.name for f in dataclasses.fields(ObservedUpdate)}
    assert names == {"spec", "global_weights", "client_weights", "mode", "lr", "local_steps",
                     "batch_size", "num_examples", "labels", "modality"}
    config_types = {f.type for f in dataclasses.fields(AttackConfig)}
    assert all("Tensor" not in str(t) for t in config_types)


def test_observed_gradient_of_fedsgd_is_the_batch_gradient(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = make_update(LENET, x[:2], y[:2], lr=0.5)
    matcher = GradientMatcher(observed, AttackConfig())
    true_grad = matcher.candidate(x[:2], matcher.one_hot(y[:2]), create_graph=False)
    for name, g in observed.observed_gradient().items():
        torch.testing.assert_close(g, true_grad[name], atol=1e-5, rtol=1e-4)
    assert float(matcher.loss(x[:2], matcher.one_hot(y[:2])).detach()) < 1e-8


def test_replay_reproduces_a_fedavg_update_that_the_mean_gradient_only_approximates(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = make_update(LENET, x[:4], y[:4], lr=0.5, local_steps=4, batch_size=2, mode="fedavg")
    probs = torch.nn.functional.one_hot(y[:4], 10).float()
    replay = GradientMatcher(observed, AttackConfig(fedavg_handling="replay")).loss(x[:4], probs)
    average = GradientMatcher(observed, AttackConfig(fedavg_handling="average-gradient")).loss(x[:4], probs)
    assert float(replay.detach()) < 1e-8 < float(average.detach())


def test_observation_validates_declared_facts(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = make_update(LENET, x[:1], y[:1])
    with pytest.raises(ConfigError, match="mode"):
        dataclasses.replace(observed, mode="fedprox")
    with pytest.raises(ConfigError, match="local_steps"):
        dataclasses.replace(observed, local_steps=3)
    with pytest.raises(ValueError, match="labels"):
        dataclasses.replace(observed, labels=(1, 2))


def test_non_finite_weights_give_diverged_not_an_exception(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = make_update(LENET, x[:1], y[:1])
    huge = {k: v * 1e38 for k, v in observed.global_weights.items()}  # logits overflow to inf -> nan loss
    for name in ("dlg", "idlg", "grnn"):
        result = attacks.get_attack(name)(dataclasses.replace(observed, global_weights=huge), TINY)
        assert result.status == "diverged", (name, result.reason)
        assert "non-finite" in result.reason


def test_an_exception_inside_an_attack_becomes_status_failed(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    events_on_an_ann = dataclasses.replace(make_update(LENET, x[:1], y[:1]), modality="events")
    for name in ("dlg", "idlg", "grnn"):
        result = attacks.get_attack(name)(events_on_an_ann, TINY)
        assert result.status == "failed" and "spiking model" in result.reason


def test_time_budget_stops_with_status_budget(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    result = attacks.get_attack("dlg")(make_update(LENET, x[:1], y[:1]), AttackConfig(time_budget_s=1e-3))
    assert result.status == "budget" and result.reason.startswith(attacks.core.TIME_GUARD)
    assert result.iterations == 1


def test_restarts_keep_the_lowest_loss(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    result = attacks.get_attack("idlg")(make_update(LENET, x[:1], y[:1]), AttackConfig(iterations=1, restarts=3))
    assert result.diagnostics["restarts_run"] == 3
    assert result.final_loss == min(result.loss_history)
