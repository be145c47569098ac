"""The batched fast path: functional models, independence, agreement, early stops."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import attacks
from attacks.batched import StackedMatcher, lbfgs_kernel, reconstruct_many
from attacks.core import AttackConfig
from fedsnn.task.models import ModelSpec, build_model, stacked_logits
from attacks.gradient import GradientMatcher
from fedsnn.errors import ConfigError

LENET = ModelSpec("lenet", (1, 28, 28), 10)
SNN = ModelSpec("snn-lenet", (1, 28, 28), 10, timesteps=3)
SNN_EVENTS = ModelSpec("snn-lenet", (2, 12, 12), 10, timesteps=3, neuron="lif", surrogate="sigmoid")


@pytest.mark.parametrize("spec, kind", [(LENET, "image"), (SNN, "image"), (SNN_EVENTS, "steps")])
def test_functional_models_equal_the_modules(spec: ModelSpec, kind: str) -> None:
    models = [build_model(spec, seed=i).eval() for i in range(3)]
    for m in models:  # make the SNN layers spike
        with torch.no_grad():
            m.conv1.weight.mul_(3)
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models])
              for n, _ in models[0].named_parameters()}
    x = torch.rand(3, 2, *spec.input_shape) if kind == "image" else (
        torch.rand(3, spec.timesteps, 2, *spec.input_shape) > 0.6).float()
    expected = torch.stack([m(x[i]) for i, m in enumerate(models)])
    torch.testing.assert_close(stacked_logits(params, x, spec, kind), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spec", [LENET, SNN])
def test_stacked_matching_loss_and_gradient_equal_gradient_matcher(spec, make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = [make_update(spec, x[i:i + 1], y[i:i + 1], seed=i) for i in range(3)]
    matchers = [GradientMatcher(o, AttackConfig()) for o in observed]
    stacked = StackedMatcher(matchers)
    dummy = torch.rand(3, *matchers[0].layout.shape, requires_grad=True)
    probs = torch.stack([m.one_hot(y[i:i + 1]) for i, m in enumerate(matchers)])
    loss = stacked.loss(torch.arange(3), dummy, probs)
    (grad,) = torch.autograd.grad(loss.sum(), dummy)
    for i, m in enumerate(matchers):
        one = dummy[i].detach().clone().requires_grad_(True)
        expected = m.loss(one, probs[i])
        torch.testing.assert_close(loss[i], expected.detach(), rtol=1e-4, atol=1e-6)
        reference = torch.autograd.grad(expected, one)[0]  # a spike at the threshold may flip: compare norms
        assert float((grad[i] - reference).norm()) < 1e-2 * float(reference.norm())


def test_victims_are_independent(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = [make_update(LENET, x[i:i + 1], y[i:i + 1], seed=i) for i in range(3)]
    config = AttackConfig(iterations=3, max_eval=5, tolerance=0.0, stall_patience=0)
    base = reconstruct_many(observed, config, "dlg")
    other = make_update(LENET, x[5:6], y[5:6], seed=9)  # victim 1 replaced by someone else
    changed = reconstruct_many([observed[0], other, observed[2]], config, "dlg")
    for i in (0, 2):
        assert torch.equal(base[i].samples, changed[i].samples)
        assert base[i].loss_history == changed[i].loss_history
    assert base[1].loss_history != changed[1].loss_history


@pytest.mark.parametrize("attack", ["dlg", "idlg"])
def test_batched_agrees_with_one_at_a_time(attack, make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = [make_update(LENET, x[i:i + 1], y[i:i + 1], seed=i) for i in range(4)]
    config = AttackConfig(iterations=3, max_eval=5)  # short: L-BFGS amplifies rounding differences
    batched = reconstruct_many(observed, config, attack)
    for o, b in zip(observed, batched):
        alone = attacks.get_attack(attack)(o, config)
        assert b.status == alone.status and b.diagnostics.keys() - {"queue"} == alone.diagnostics.keys()
        assert b.diagnostics["queue"]["victims"] == 4 and b.diagnostics["queue"]["ticks"] > 0
        torch.testing.assert_close(b.initial, alone.initial)  # the same starting dummy, the evaluator's control
        assert b.labels.tolist() == alone.labels.tolist()
        assert b.evaluations == alone.evaluations  # same per-victim L-BFGS flow
        torch.testing.assert_close(torch.tensor(b.loss_history), torch.tensor(alone.loss_history),
                                   rtol=1e-2, atol=1e-6)  # same iterates up to floating-point noise


def test_per_victim_seeds_equal_alone_with_that_seed(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = [make_update(LENET, x[i:i + 1], y[i:i + 1], seed=i) for i in range(3)]
    config = AttackConfig(iterations=2, max_eval=4, restarts=2)
    seeds = [7, 3, 11]
    for o, s, b in zip(observed, seeds, reconstruct_many(observed, config, "dlg", seeds=seeds)):
        alone = attacks.get_attack("dlg")(o, dataclasses.replace(config, seed=s))
        assert b.evaluations == alone.evaluations and b.labels.tolist() == alone.labels.tolist()
        assert b.loss_history[0] == pytest.approx(alone.loss_history[0], rel=1e-4)  # same initial dummy
    with pytest.raises(ConfigError):
        reconstruct_many(observed, config, "dlg", seeds=[1])


def test_lbfgs_history_wraps_and_compacts_like_alone(make_update, mnist_digits) -> None:
    """Past 100 curvature pairs the oldest drop out; the buffer rows of finished
    victims are compacted away (4 easy victims stop at once): each hard victim
    still follows its one-at-a-time run (L-BFGS amplifies rounding, hence the
    loose comparison of late losses)."""
    x, y = mnist_digits
    start = GradientMatcher(make_update(LENET, x[:1], y[:1]), AttackConfig()).layout.initial(
        torch.Generator().manual_seed(0))  # the attack's own first dummy: matched at once
    easy = [make_update(LENET, start, y[i:i + 1], seed=i) for i in range(4)]
    hard = [make_update(LENET, x[i:i + 1], y[i:i + 1], seed=i) for i in range(4)]
    config = AttackConfig(iterations=7, max_eval=20, tolerance=1e-9, stall_patience=0)  # ~140 pairs
    batched = reconstruct_many(easy + hard, config, "idlg")
    assert all(r.status == "converged" and r.evaluations == 1 for r in batched[:4])
    for b, o in zip(batched[4:], hard):
        alone = attacks.get_attack("idlg")(o, config)
        assert b.evaluations == alone.evaluations > 100
        assert b.loss_history[:2] == pytest.approx(alone.loss_history[:2], rel=1e-2)
        assert 0.5 < b.final_loss / alone.final_loss < 2


def test_snn_batched_runs_and_agrees_at_the_start(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = [make_update(SNN, x[i:i + 1], y[i:i + 1], seed=i) for i in range(2)]
    config = AttackConfig(iterations=2, max_eval=3)
    for o, b in zip(observed, reconstruct_many(observed, config, "idlg")):
        alone = attacks.get_attack("idlg")(o, config)
        assert b.status == alone.status and b.samples.shape == alone.samples.shape
        assert b.diagnostics["firing_rates"] == pytest.approx(alone.diagnostics["firing_rates"], abs=0.05)
        assert b.loss_history[0] == pytest.approx(alone.loss_history[0], rel=1e-4)


def test_early_stopped_victims_drop_out(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    hard = make_update(LENET, x[1:2], y[1:2], seed=1)
    layout = GradientMatcher(hard, AttackConfig()).layout
    start = layout.initial(torch.Generator().manual_seed(0))  # the attack's own first dummy
    easy = make_update(LENET, start, y[:1], seed=0)  # matched at the first evaluation
    config = AttackConfig(iterations=3, max_eval=4, stall_patience=0)
    results = reconstruct_many([easy, hard], config, "idlg")
    assert results[0].status == "converged" and results[0].evaluations == 1
    assert results[1].evaluations > 4


def test_unbatched_attacks_and_settings_fall_back(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = [make_update(LENET, x[:1], y[:1], seed=0)]
    results = reconstruct_many(observed, AttackConfig(grnn_iterations=2), "grnn")
    assert results[0].ok and results[0].diagnostics["attack"] == "grnn"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_device(make_update, mnist_digits) -> None:
    x, y = mnist_digits
    observed = [make_update(LENET, x[i:i + 1], y[i:i + 1], seed=i) for i in range(2)]
    results = reconstruct_many(observed, AttackConfig(iterations=2, device="cuda"), "idlg")
    assert all(r.ok for r in results), [r.reason for r in results]


@pytest.mark.skipif(not lbfgs_kernel.AVAILABLE, reason="numba is not installed")
def test_lbfgs_kernel_recursion_equals_the_torch_form() -> None:
    """The numba two-loop recursion and oldest-pair drop give the PyTorch form's directions, past a full history."""
    from attacks.batched import lbfgs

    gen = torch.Generator().manual_seed(0)
    v, n = 5, 12
    fast, reference = lbfgs.History(torch.zeros(v, n)), lbfgs.History(torch.zeros(v, n), kernel="torch")
    assert fast.fast and not reference.fast
    for step in range(3 * lbfgs.HISTORY):  # each victim is in about half the calls
        idx = torch.tensor(sorted(set(torch.randint(v, (3,), generator=gen).tolist())))
        g, s = torch.randn(len(idx), n, generator=gen), torch.randn(len(idx), n, generator=gen)
        y = s * (0.5 + torch.rand(len(idx), n, generator=gen))
        y[0] *= -1 if step % 7 == 0 else 1  # s.y < 0: this pair is not stored
        got, want = fast.direction(idx, g, s, y), reference.direction(idx, g, s, y)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert int(fast.count.max()) == lbfgs.HISTORY  # the drop ran
    for name in ("upper", "lower", "rho", "count", "start"):
        torch.testing.assert_close(getattr(fast, name), getattr(reference, name), rtol=1e-4, atol=1e-5)
