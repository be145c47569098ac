"""The fused IF/LIF node against the per-step neuron and SpikingJelly: spikes, gradients, double backward.

Why no ``gradcheck``: the spike is a Heaviside step whose backward is a
surrogate by design, so finite differences (0 almost everywhere) never match
it; instead every derivative is compared with the per-step autograd graph of
the same neuron (``stacked.spike_train_per_step``), whose surrogate pathway is
the definition, in float64 to 1e-9 and in float32 to 1e-6.
"""

from __future__ import annotations

import pytest
import torch
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate

from fedsnn.task.models import ModelSpec, stacked_logits
from fedsnn.task.models.fused_neuron import fused_spike_train
from fedsnn.task.models.stacked import spike_train_per_step
from fedsnn.task.models.surrogate import ATan, Sigmoid

T = 6
CASES = [("if", ATan()), ("lif", ATan()), ("if", Sigmoid()), ("lif", Sigmoid())]


def drive(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Currents in [-0.5, 1.5): some neurons fire every step, some never, most now and then."""
    return (2 * torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) - 0.5)


def chain(train, x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, neuron: str, spike, constant: bool):
    """Two spiking layers with per-element weights, like conv -> neuron -> conv -> neuron:
    x [T, N] (or [N] with ``constant``) -> spike rates [N]."""
    s1 = train(x * w1, T, neuron, spike, constant)
    s2 = train(s1 * w2 + 0.3, T, neuron, spike, False)
    return s2.mean(0)


def matching_gradient(train, x, w1, w2, neuron, spike, constant):
    """Gradient matching in miniature: L = ||dCE/dW - target||^2, then dL/dx (a double backward).
    Returns (first-order weight gradients, dL/dx)."""
    rates = chain(train, x, w1, w2, neuron, spike, constant)
    ce = (rates * torch.linspace(-1, 1, rates.numel(), dtype=rates.dtype)).sum()
    g1, g2 = torch.autograd.grad(ce, (w1, w2), create_graph=True)
    loss = ((g1 - 0.1) ** 2).sum() + ((g2 + 0.2) ** 2).sum()
    (gx,) = torch.autograd.grad(loss, x)
    return (g1.detach(), g2.detach()), gx


@pytest.mark.parametrize("neuron, spike", CASES)
@pytest.mark.parametrize("constant", [False, True])
def test_spikes_are_bit_identical_to_the_per_step_neuron(neuron, spike, constant) -> None:
    z = drive((40,) if constant else (T, 40), torch.float32)
    assert torch.equal(fused_spike_train(z, T, neuron, spike, constant),
                       spike_train_per_step(z, T, neuron, spike, constant))


@pytest.mark.parametrize("neuron", ["if", "lif"])
def test_spikes_and_gradient_equal_spikingjelly(neuron) -> None:
    node = (sj_neuron.IFNode(surrogate_function=sj_surrogate.ATan(), step_mode="m", detach_reset=False)
            if neuron == "if" else
            sj_neuron.LIFNode(tau=2.0, decay_input=True, surrogate_function=sj_surrogate.ATan(), step_mode="m",
                              detach_reset=False))
    z = drive((T, 3, 5, 5), torch.float32).requires_grad_(True)
    theirs = node(z)
    weights = torch.rand(theirs.shape, generator=torch.Generator().manual_seed(1))
    (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), z)
    ours = fused_spike_train(z, T, neuron, ATan(), constant=False)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), z)
    assert torch.equal(ours, theirs.detach()) and ours.sum() > 0
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("neuron, spike", CASES)
@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, 1e-6)])
def test_first_and_double_backward_equal_the_per_step_neuron(neuron, spike, constant, dtype, tol) -> None:
    shape = (30,) if constant else (T, 30)
    results = []
    for train in (fused_spike_train, spike_train_per_step):
        x = drive(shape, dtype).requires_grad_(True)
        w1 = (1 + drive((30,), dtype, seed=2)).requires_grad_(True)
        w2 = (1 + drive((30,), dtype, seed=3)).requires_grad_(True)
        results.append(matching_gradient(train, x, w1, w2, neuron, spike, constant))
    (fused_w, fused_x), (step_w, step_x) = results
    assert fused_x.abs().sum() > 0  # the double backward reached the input
    for a, b in zip((*fused_w, fused_x), (*step_w, step_x)):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_bad_neuron_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="'if', 'lif'"):
        fused_spike_train(torch.zeros(T, 2), T, "izhikevich", ATan(), constant=False)


@pytest.mark.parametrize("neuron", ["if", "lif"])
def test_stacked_snn_lenet_fused_equals_per_step(neuron) -> None:
    """The wiring: SNN-LeNet's stacked logits and matching double backward, fused vs per-step, in
    float64 (in float32 the double backward's long sums differ by rounding alone: 2.4e-4 relative
    on 17 of 1568 elements, measured)."""
    spec = ModelSpec("snn-lenet", (1, 28, 28), 10, timesteps=4, neuron=neuron)
    g = torch.Generator().manual_seed(0)
    params = {"conv1.weight": torch.randn(2, 12, 1, 5, 5, generator=g), "conv1.bias": torch.zeros(2, 12),
              "conv2.weight": 0.3 * torch.randn(2, 12, 12, 5, 5, generator=g), "conv2.bias": torch.zeros(2, 12),
              "conv3.weight": 0.3 * torch.randn(2, 12, 12, 5, 5, generator=g), "conv3.bias": torch.zeros(2, 12),
              "fc.weight": torch.randn(2, 10, 588, generator=g), "fc.bias": torch.zeros(2, 10)}
    x0 = torch.rand(2, 1, 1, 28, 28, generator=g)
    out = {}
    for fused in (True, False):
        weights = {n: p.double().requires_grad_(True) for n, p in params.items()}
        x = x0.double().requires_grad_(True)
        logits = stacked_logits(weights, x, spec, "image", fused=fused)
        grads = torch.autograd.grad(logits.log_softmax(-1)[..., 3].sum(), list(weights.values()), create_graph=True)
        (gx,) = torch.autograd.grad(sum((gw ** 2).sum() for gw in grads), x)
        out[fused] = (logits.detach(), gx)
    torch.testing.assert_close(out[True][0], out[False][0], rtol=0, atol=0)
    assert out[True][1].abs().sum() > 0
    torch.testing.assert_close(out[True][1], out[False][1], rtol=1e-9, atol=1e-9)
