"""Every attack end to end on SNN-LeNet (tiny budgets, T=4), images and events."""

from __future__ import annotations

import pytest
import torch

import attacks
from attacks.core import AttackConfig
from attacks.gradient import GradientMatcher
from fedsnn.task.models import ModelSpec

SNN = ModelSpec("snn-lenet", (1, 28, 28), 10, timesteps=4)
EVENTS = ModelSpec("snn-lenet", (2, 16, 16), 11, timesteps=4)
TINY = AttackConfig(iterations=2, max_eval=4, grnn_iterations=3)


def event_batch(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic DVS-like frames [B, T=4, C=2, 16, 16] with 20% spikes, labels [B]."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(batch, 4, 2, 16, 16, generator=g) < 0.2).float(), torch.tensor([3, 7][:batch])


@pytest.mark.parametrize("name", ["dlg", "idlg", "grnn"])
@pytest.mark.parametrize("layout", ["static", "frames"])
def test_attacks_run_on_snn_lenet_with_static_images(name: str, layout: str, make_update, mnist_digits) -> None:
    x, y = mnist_digits
    config = AttackConfig(iterations=2, max_eval=4, grnn_iterations=3, dummy_layout=layout)
    result = attacks.get_attack(name)(make_update(SNN, x[:1], y[:1]), config)
    assert result.status == "budget", result.reason
    assert result.samples.shape == (1, 1, 28, 28)  # the data's own layout, whatever the dummy's
    assert result.diagnostics["layout"] == ("image" if layout == "static" else "frames")
    rates = result.diagnostics["firing_rates"]
    assert len(rates) == 3 and all(0.0 <= r <= 1.0 for r in rates)
    assert set(result.diagnostics["observed_grad_norm"]) == set(result.diagnostics["dummy_grad_norm"])


@pytest.mark.parametrize("name", ["dlg", "idlg", "grnn"])
def test_attacks_run_on_event_data_and_return_b_t_c_h_w(name: str, make_update) -> None:
    frames, labels = event_batch()
    observed = make_update(EVENTS, frames, labels, modality="events")
    result = attacks.get_attack(name)(observed, TINY)
    assert result.status == "budget", result.reason
    assert result.samples.shape == (2, 4, 2, 16, 16)
    assert float(result.samples.min()) >= 0  # spike intensities stay non-negative


def test_idlg_infers_the_label_through_spiking_layers(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    result = attacks.get_attack("idlg")(make_update(SNN, x[:1], y[:1]), AttackConfig(iterations=1, max_eval=1))
    assert result.labels.tolist() == y[:1].tolist()


def test_true_input_matches_the_snn_update_exactly(make_update) -> None:
    # The matching objective is exact through the surrogate pathway, and differentiable twice.
    frames, labels = event_batch()
    observed = make_update(EVENTS, frames, labels, modality="events")
    matcher = GradientMatcher(observed, AttackConfig())
    truth = frames.transpose(0, 1).clone().requires_grad_(True)  # [T, B, C, H, W]
    loss = matcher.loss(truth, matcher.one_hot(labels))
    assert float(loss.detach()) < 1e-10
    (grad,) = torch.autograd.grad(loss + matcher.loss(truth * 0.5, matcher.one_hot(labels)), truth)
    assert torch.isfinite(grad).all() and float(grad.abs().sum()) > 0


@pytest.mark.parametrize("neuron", ["if", "lif"])
@pytest.mark.parametrize("layout", ["static", "frames"])
def test_matcher_evaluates_the_snn_like_its_spikingjelly_module(neuron, layout, make_update, mnist_digits) -> None:
    # The one-victim matcher runs the stacked form (fused neuron), not the modules: same logits,
    # same weight gradient, and a double backward that agrees with the modules' own.
    x, y = mnist_digits
    spec = ModelSpec("snn-lenet", (1, 28, 28), 10, timesteps=4, neuron=neuron)
    matcher = GradientMatcher(make_update(spec, x[:1], y[:1]), AttackConfig(dummy_layout=layout))
    with torch.no_grad():
        matcher.params["conv1.weight"].mul_(3)  # make every layer spike
    dummy = matcher.layout.initial(torch.Generator().manual_seed(0)).requires_grad_(True)
    probs = matcher.one_hot(y[:1])
    ours = matcher.logits(matcher.params, dummy)
    theirs = torch.func.functional_call(matcher.model, matcher.params, (dummy,))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    grads = [matcher.batch_gradient(matcher.params, dummy, probs)]
    ce = torch.nn.functional.cross_entropy(theirs, y[:1])
    grads.append(dict(zip(matcher.params, torch.autograd.grad(ce, list(matcher.params.values()), create_graph=True))))
    for name in matcher.params:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6)
    outer = [torch.autograd.grad(sum((g ** 2).sum() for g in gs.values()), dummy)[0] for gs in grads]
    assert float(outer[0].abs().sum()) > 0
    assert float((outer[0] - outer[1]).norm()) < 1e-3 * float(outer[1].norm())
