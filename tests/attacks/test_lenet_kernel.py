"""The numba LeNet kernel equals the PyTorch stacked form it replaces, and steps aside where it does not apply."""

from __future__ import annotations

import pytest
import torch

from attacks.batched import StackedMatcher, lenet_kernel, reconstruct_many
from attacks.core import AttackConfig
from attacks.gradient import GradientMatcher
from fedsnn.errors import ConfigError
from fedsnn.task.models import ModelSpec

pytestmark = pytest.mark.skipif(not lenet_kernel.AVAILABLE, reason="numba is not installed")

GREY = ModelSpec("lenet", (1, 28, 28), 10)
COLOUR = ModelSpec("lenet", (3, 32, 32), 100)


def matchers(make_update, spec: ModelSpec, count: int, batch: int = 1) -> list[GradientMatcher]:
    g = torch.Generator().manual_seed(1)
    return [GradientMatcher(make_update(spec, torch.rand(batch, *spec.input_shape, generator=g),
                                        torch.randint(spec.num_classes, (batch,), generator=g), seed=i),
                            AttackConfig()) for i in range(count)]


@pytest.mark.parametrize("spec", [GREY, COLOUR])
def test_loss_and_gradients_equal_the_autograd_double_backward(spec, make_update) -> None:
    ms = matchers(make_update, spec, 3)
    fast, reference = StackedMatcher(ms), StackedMatcher(ms, kernel="torch")
    assert fast.fast and not reference.fast
    rows = torch.tensor([2, 0, 2, 1])  # slots out of order and repeated, as the engine's active set can be
    g = torch.Generator().manual_seed(2)
    x = 0.45 + 0.1 * torch.rand(len(rows), 1, *spec.input_shape, generator=g)
    logits = torch.randn(len(rows), 1, spec.num_classes, generator=g)  # DLG's free labels: gradient flows to them
    results = []
    for matcher in (fast, reference):
        xi, li = x.clone().requires_grad_(True), logits.clone().requires_grad_(True)
        loss = matcher.loss(rows, xi, li.softmax(-1))
        results.append((loss.detach(), *torch.autograd.grad((loss * torch.arange(1.0, 5.0)).sum(), [xi, li])))
    for got, want in zip(*results):
        assert float((got - want).norm()) < 1e-5 * float(want.norm())


def test_it_steps_aside_where_it_does_not_apply(make_update) -> None:
    assert not StackedMatcher(matchers(make_update, GREY, 2, batch=2)).fast  # two samples per victim
    assert not StackedMatcher(matchers(make_update, ModelSpec("snn-lenet", (1, 28, 28), 10, timesteps=3), 2)).fast
    partial = {"fc.weight": torch.zeros(1, 10, 588), "fc.bias": torch.zeros(1, 10)}
    assert not lenet_kernel.applies("lenet", "image", 1, partial)  # a partial gradient
    full = StackedMatcher(matchers(make_update, GREY, 2))
    assert not lenet_kernel.applies("lenet", "image", 1, {n: t.double() for n, t in full.target.items()})
    with pytest.raises(ConfigError, match="kernel"):
        AttackConfig(kernel="cuda")


def test_the_engine_reconstructs_the_same_with_either_form(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = [make_update(GREY, x[i:i + 1], y[i:i + 1], seed=i) for i in range(3)]
    config = AttackConfig(iterations=20, tolerance=0.0, stall_patience=0)
    fast = reconstruct_many(observed, config, "idlg")
    reference = reconstruct_many(observed, AttackConfig(iterations=20, tolerance=0.0, stall_patience=0,
                                                        kernel="torch"), "idlg")
    for f, r, truth in zip(fast, reference, x):
        assert f.status == r.status == "budget"
        assert float(((f.samples[0] - truth) ** 2).mean()) < 1e-3  # both rebuild the digit
        assert float((f.samples - r.samples).abs().max()) < 1e-2  # on trajectories equal up to rounding


def test_without_numba_the_engine_runs_the_pytorch_forms(make_update, mnist_digits, monkeypatch) -> None:
    """Where numba is missing (``AVAILABLE`` False) the batched engine runs exactly the kernel='torch' path."""
    from attacks.batched import lbfgs_kernel

    x, y = mnist_digits
    observed = [make_update(GREY, x[i:i + 1], y[i:i + 1], seed=i) for i in range(2)]
    reference = reconstruct_many(observed, AttackConfig(iterations=3, kernel="torch"), "dlg")
    monkeypatch.setattr(lenet_kernel, "AVAILABLE", False)
    monkeypatch.setattr(lbfgs_kernel, "AVAILABLE", False)
    plain = reconstruct_many(observed, AttackConfig(iterations=3), "dlg")
    for p, r in zip(plain, reference):
        assert torch.equal(p.samples, r.samples) and p.evaluations == r.evaluations
