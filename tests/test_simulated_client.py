"""The one builder of a simulated client's update: FedSGD is exactly -lr * gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fedsnn.experiment.simulated_client import client_update
from fedsnn.task.models import ModelSpec, build_model

SPEC = ModelSpec("lenet", (1, 28, 28), 10)


def test_fedsgd_update_is_minus_lr_times_the_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, 28, 28, generator=g), torch.tensor([3, 7])
    update = client_update(SPEC, 5, x, y, lr=0.1)
    model = build_model(SPEC, seed=5)
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    for (name, _), grad in zip(model.named_parameters(), grads):
        delta = update.client_weights[name] - update.global_weights[name]
        torch.testing.assert_close(delta, -0.1 * grad, rtol=1e-4, atol=1e-6)
    assert (update.mode, update.batch_size, update.num_examples, update.modality) == ("fedsgd", 2, 2, "image")


def test_single_sample_and_events_and_fedavg_steps() -> None:
    one = client_update(SPEC, 0, torch.rand(1, 28, 28), torch.tensor(4), lr=0.1)
    assert one.num_examples == 1
    events = client_update(ModelSpec("snn-lenet", (2, 8, 8), 3, timesteps=2), 0,
                           torch.rand(2, 2, 2, 8, 8), torch.tensor([0, 2]), lr=0.1)
    assert events.modality == "events"
    steps = client_update(SPEC, 0, torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]), lr=0.1,
                          local_steps=2, batch_size=2, mode="fedavg")
    assert (steps.local_steps, steps.batch_size, steps.num_examples) == (2, 2, 4)
    with pytest.raises(ValueError):
        client_update(SPEC, 0, torch.rand(4, 1, 28, 28), torch.arange(4), lr=0.1, local_steps=2, mode="fedsgd")
