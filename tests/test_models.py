"""Victim models: shapes, init, neuron dynamics and the double backward attacks need."""

from __future__ import annotations

import pytest
import torch
from spikingjelly.activation_based import surrogate as sj_surrogate

from fedsnn.task.models import ModelSpec, build_model
from fedsnn.task.models.lenet import hidden_size
from fedsnn.task.models.surrogate import ATan, Sigmoid


@pytest.mark.parametrize("shape,classes,hidden", [((1, 28, 28), 10, 588), ((3, 32, 32), 100, 768), ((1, 112, 92), 40, 12 * 28 * 23)])
@pytest.mark.parametrize("name", ["lenet", "snn-lenet"])
def test_output_shapes(name, shape, classes, hidden):
    assert hidden_size(shape) == hidden
    model = build_model(ModelSpec(name, shape, classes, timesteps=3), seed=0)
    assert model(torch.rand(2, *shape)).shape == (2, classes)
    if name == "snn-lenet":  # event data arrive as T frames
        assert model(torch.rand(3, 2, *shape)).shape == (2, classes)


def test_uniform_init_and_same_seed_same_weights_across_fleets():
    ann = build_model(ModelSpec("lenet", (1, 28, 28), 10), seed=3)
    snn = build_model(ModelSpec("snn-lenet", (1, 28, 28), 10), seed=3)
    for (name, a), (_, s) in zip(ann.state_dict().items(), snn.state_dict().items()):
        assert torch.equal(a, s), name
        assert a.min() >= -0.5 and a.max() <= 0.5
    default = build_model(ModelSpec("lenet", (1, 28, 28), 10, init="default"), seed=3)
    assert default.fc.weight.abs().max() < 0.05  # PyTorch's fan-in bound, 1/sqrt(588)


def test_if_neuron_dynamics_by_hand():
    # one input pixel -> constant drive 0.4 per step into an IF neuron (threshold 1, hard reset)
    model = build_model(ModelSpec("snn-lenet", (1, 1, 1), 2, timesteps=6), seed=0)
    drive = torch.full((6, 1, 1, 1, 1), 0.4)
    spikes = model.sn1(drive).flatten().tolist()
    # v: 0.4, 0.8, 1.2 -> spike, reset 0; 0.4, 0.8, 1.2 -> spike
    assert spikes == [0, 0, 1, 0, 0, 1]


def test_state_is_reset_between_forward_passes():
    model = build_model(ModelSpec("snn-lenet", (1, 28, 28), 10, timesteps=4), seed=0)
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("ours,theirs", [(ATan(), sj_surrogate.ATan()), (Sigmoid(), sj_surrogate.Sigmoid())])
def test_surrogates_match_spikingjelly(ours, theirs):
    x = torch.linspace(-2, 2, 41, requires_grad=True)
    y1 = ours(x)
    (g1,) = torch.autograd.grad(y1.sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    y2 = theirs(x2)
    (g2,) = torch.autograd.grad(y2.sum(), x2)
    assert torch.equal(y1, y2)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("neuron", ["if", "lif"])
def test_snn_supports_double_backward_in_eval_mode(neuron):
    """d/dx || dL/dW ||^2 must be finite and non-zero: gradient matching needs it."""
    model = build_model(ModelSpec("snn-lenet", (1, 28, 28), 10, timesteps=5, neuron=neuron), seed=0).eval()
    x = torch.rand(1, 1, 28, 28, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([3]))
    grads = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
    (gx,) = torch.autograd.grad(sum(g.pow(2).sum() for g in grads), x)
    assert torch.isfinite(gx).all() and gx.abs().sum() > 0


def test_firing_rates_are_reported_per_layer():
    model = build_model(ModelSpec("snn-lenet", (1, 28, 28), 10, timesteps=4), seed=0)
    rates = model.firing_rates(torch.rand(2, 1, 28, 28))
    assert len(rates) == 3 and all(0.0 <= r <= 1.0 for r in rates)
