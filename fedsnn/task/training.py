"""Local client training and global evaluation, as plain functions.

The batches a client trains on in a round are a deterministic function of
(seed, partition id, round, shard): ``local_batches``. The client uses it to
train; the scoring path uses the same function to re-derive the ground truth
of an attacked update, so private data never travels in a Flower message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedsnn.task.data import LabelledData


@dataclass(frozen=True)
class LocalPlan:
    """What a client does in one round: fedsgd = one step on one batch."""

    mode: str
    batch_size: int
    lr: float
    local_epochs: int = 1
    local_steps: int = 0


def local_batches(shard: np.ndarray, plan: LocalPlan, seed: int, partition_id: int, server_round: int) -> list[np.ndarray]:
    """Dataset indices of every local step, in order: list of [batch] int arrays.

    fedsgd: one batch drawn from the shard. fedavg: ``local_steps`` batches
    (cycling through reshuffled epochs) or ``local_epochs`` full passes.
    """
    rng = np.random.default_rng([seed, partition_id, server_round])
    batch = min(plan.batch_size, len(shard))
    if plan.mode == "fedsgd":
        return [shard[rng.choice(len(shard), size=batch, replace=False)]]
    batches: list[np.ndarray] = []
    epochs = plan.local_epochs if plan.local_steps == 0 else -(-plan.local_steps * batch // len(shard))
    for _ in range(epochs):
        order = shard[rng.permutation(len(shard))]
        batches.extend(order[i : i + batch] for i in range(0, len(order), batch))
    return batches[: plan.local_steps] if plan.local_steps else batches


def train_local(model: nn.Module, data: LabelledData, batches: list[np.ndarray], lr: float, device: str = "cpu") -> dict[str, float]:
    """Plain SGD (no momentum, no weight decay) on ``batches``; mean cross-entropy.

    With one batch this makes the update exactly ``-lr * gradient``, the
    FedSGD setting every gradient-inversion paper attacks. SNN models train by
    BPTT through their surrogate gradients.
    """
    model.to(device).train()
    optimiser = torch.optim.SGD(model.parameters(), lr=lr)
    losses, correct, seen = [], 0, 0
    start = time.perf_counter()
    for idx in batches:
        x, y = data.samples[idx].to(device), data.labels[idx].to(device)
        optimiser.zero_grad()
        logits = model(_model_input(data, x))
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return {
        "train-loss": float(np.mean(losses)),
        "train-accuracy": correct / max(seen, 1),
        "train-seconds": time.perf_counter() - start,
    }


@torch.no_grad()
def accuracy_and_loss(model: nn.Module, data: LabelledData, batch_size: int = 256, device: str = "cpu") -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``data``."""
    model.to(device).eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(data), batch_size):
        x, y = data.samples[i : i + batch_size].to(device), data.labels[i : i + batch_size].to(device)
        logits = model(_model_input(data, x))
        total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    n = max(len(data), 1)
    return {"accuracy": correct / n, "loss": total_loss / n}


def _model_input(data: LabelledData, x: torch.Tensor) -> torch.Tensor:
    """Event batches are stored [B, T, C, H, W]; models take time first."""
    return x.transpose(0, 1) if data.is_event else x
