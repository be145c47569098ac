"""Fixtures for the attack tests: a simulated client that trains by plain SGD.

Only synthetic data or the MNIST sample embedded in the package are used;
nothing here reads /work/shared.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from attacks.core import ObservedUpdate
from fedsnn.task.models import ModelSpec, build_model

MakeUpdate = Callable[..., ObservedUpdate]


@pytest.fixture()
def make_update() -> MakeUpdate:
    """Build the update a client would send after SGD on (samples, labels).

    samples: [B, C, H, W] images or [B, T, C, H, W] events; the client feeds
    events to the SNN as [T, B, C, H, W]. Consecutive minibatches of
    ``batch_size`` are taken in order, ``local_steps`` times.
    """

    def make(
        spec: ModelSpec, samples: torch.Tensor, labels: torch.Tensor, lr: float = 0.1, seed: int = 0,
        local_steps: int = 1, batch_size: int | None = None, mode: str = "fedsgd", modality: str = "image",
    ) -> ObservedUpdate:
        model = build_model(spec, seed=seed)
        sent = {k: v.detach().clone() for k, v in model.state_dict().items()}
        optimiser = torch.optim.SGD(model.parameters(), lr=lr)
        n, batch = len(labels), batch_size or len(labels)
        for step in range(local_steps):
            start = (step * batch) % n
            x = samples[start : start + batch]
            x = x.transpose(0, 1) if x.dim() == 5 else x
            optimiser.zero_grad()
            F.cross_entropy(model(x), labels[start : start + batch]).backward()
            optimiser.step()
        returned = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return ObservedUpdate(spec, sent, returned, mode, lr, local_steps, batch, n, modality=modality)

    return make


@pytest.fixture(scope="module")
def mnist_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 8 test digits of the embedded MNIST sample: [8, 1, 28, 28], [8]."""
    from fedsnn.task.data import load_dataset

    test = load_dataset("mnist").test
    return test.samples[:8].clone(), test.labels[:8].clone()
