"""Fixtures for the attack tests: a simulated client that trains by plain SGD.

Only synthetic data or the MNIST sample embedded in the package are used;
nothing here reads /work/shared.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from attacks.core import ObservedUpdate
from attacks.gradient import learned
from fedsnn.experiment.simulated_client import client_update
from fedsnn.task.models import ModelSpec

MakeUpdate = Callable[..., ObservedUpdate]


@pytest.fixture(autouse=True)
def _no_kept_decoders():
    """Every test trains its own learned decoders (none kept from an earlier test)."""
    learned.clear_decoders()
    yield
    learned.clear_decoders()


@pytest.fixture()
def make_update() -> MakeUpdate:
    """The update a client would send after SGD on (samples, labels): ``simulated_client.client_update``.

    samples: [B, C, H, W] images or [B, T, C, H, W] events; consecutive
    minibatches of ``batch_size`` are taken in order, ``local_steps`` times.
    ``modality`` is checked against the one the builder reads off the shape.
    """

    def make(
        spec: ModelSpec, samples: torch.Tensor, labels: torch.Tensor, lr: float = 0.1, seed: int = 0,
        local_steps: int = 1, batch_size: int | None = None, mode: str = "fedsgd", modality: str = "image",
    ) -> ObservedUpdate:
        update = client_update(spec, seed, samples, labels, lr, local_steps, batch_size, mode)
        if update.modality != modality:
            raise ValueError(f"samples of shape {tuple(samples.shape)} are {update.modality}, not {modality}")
        return update

    return make


@pytest.fixture(scope="module")
def mnist_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 8 test digits of the embedded MNIST sample: [8, 1, 28, 28], [8]."""
    from fedsnn.task.data import load_dataset

    test = load_dataset("mnist").test
    return test.samples[:8].clone(), test.labels[:8].clone()
