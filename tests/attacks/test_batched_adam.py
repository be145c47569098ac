"""The batched Adam is ``torch.optim.Adam`` for each victim alone, bit for bit,
also for victims that start at different steps (a refilled slot)."""

from __future__ import annotations

import pytest
import torch

import attacks
from attacks.batched import reconstruct_many
from attacks.batched.adam import BatchedAdam
from attacks.core import AttackConfig
from fedsnn.task.models import ModelSpec


def gradient(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x) + 0.1 * x ** 3


def torch_adam(x0: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    p = x0.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([p], lr=lr)
    for _ in range(steps):
        p.grad = gradient(p.detach())
        optimiser.step()
    return p.detach()


def test_rows_equal_torch_adam_alone_with_staggered_starts() -> None:
    x0 = torch.randn(3, 40, generator=torch.Generator().manual_seed(0))
    fresh = torch.randn(40, generator=torch.Generator().manual_seed(1))
    adam, x = BatchedAdam(x0, lr=0.05), x0.clone()
    everyone = torch.arange(3)
    for step in range(12):
        if step == 5:  # slot 1 gets a new victim: fresh moments and step count
            adam.reset(torch.tensor([1]), torch.tensor([0, 2]))
            x[1] = fresh
        x = adam.update(everyone, x, gradient(x))
    for row, start, steps in ((0, x0[0], 12), (1, fresh, 7), (2, x0[2], 12)):
        assert torch.equal(x[row], torch_adam(start, steps, 0.05))


def test_subset_of_slots_leaves_the_others_untouched() -> None:
    x0 = torch.randn(2, 10, generator=torch.Generator().manual_seed(2))
    adam = BatchedAdam(x0, lr=0.1)
    moved = adam.update(torch.tensor([1]), x0[1:], gradient(x0[1:]))
    assert int(adam.steps[0]) == 0 and torch.equal(adam.exp_avg[0], torch.zeros(10))
    assert torch.equal(moved[0], torch_adam(x0[1], 1, 0.1))


@pytest.mark.parametrize("attack", ["dlg", "idlg"])
def test_engine_with_adam_agrees_with_one_at_a_time(attack, make_update, mnist_digits) -> None:
    x, y = mnist_digits
    spec = ModelSpec("lenet", (1, 28, 28), 10)
    observed = [make_update(spec, x[i:i + 1], y[i:i + 1], seed=i) for i in range(3)]
    config = AttackConfig(iterations=6, optimizer="adam", lr=0.1, restarts=2, tolerance=0.0)
    for o, b in zip(observed, reconstruct_many(observed, config, attack, max_victims=2)):
        one = attacks.get_attack(attack)(o, config)
        assert (b.status, b.reason, b.iterations, b.evaluations) == (one.status, one.reason, one.iterations,
                                                                     one.evaluations)
        torch.testing.assert_close(torch.tensor(b.loss_history), torch.tensor(one.loss_history), rtol=1e-4, atol=1e-7)
