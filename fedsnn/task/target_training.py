"""Training and scoring the GAMIN paper's targets on labelled data (the task's side).

The architectures live in ``fedsnn.task.models.targets``; this module adds
what needs data: Adam with the SNN's fan-in-scaled first-layer lr, and the
test accuracy Table I reports.
"""

from __future__ import annotations

from typing import Callable

import torch

from fedsnn.task.data import LabelledData
from fedsnn.task.models import Target

REFERENCE_FAN_IN = 784  # MNIST's input size, where the base lr was tuned


def param_groups(model: Target, lr: float) -> list[dict]:
    """Adam groups; for the SNN, the first layer's lr is scaled by min(1, 784 / D).

    Why: Adam moves every weight by about ``lr`` per step whatever its
    gradient's scale, so a hidden unit's input current moves by about
    lr x (number of active inputs) ~ lr x D x mean(x). At D = 10,304 (AT&T,
    rate-coded, ~47% of inputs spike per step) lr 5e-4 shifts every current
    by ~2.4 per step: within 3 steps the hidden LIF layer jumps from 5% to
    38% firing for every input, carries no class information, and the loss
    stays at ln 40 per step. Scaling fc1's lr by 784 / D keeps the per-step
    current change what it is on MNIST. The ANN's sigmoid has no threshold
    to overshoot and recovers from the early jump; with the scaled lr it
    underfits (AT&T: train loss 0.50, 88.75% test after 30 epochs), so it
    keeps one lr for all layers. On MNIST (D = 784) both rules coincide.
    """
    scale = min(1.0, REFERENCE_FAN_IN / model.spec.input_size) if model.spec.kind == "snn" else 1.0
    rest = [p for name, p in model.named_parameters() if not name.startswith("fc1.")]
    return [{"params": list(model.fc1.parameters()), "lr": lr * scale}, {"params": rest, "lr": lr}]


def train_target(
    model: Target, data: LabelledData, epochs: int, batch_size: int = 128, lr: float = 1e-3,
    seed: int = 0, log: Callable[[str], None] = print,
) -> None:
    """Adam (SNN: fan-in-scaled first-layer lr, ``param_groups``) on the model's own loss
    (CE, or BPTT over summed per-step CE), shuffled mini-batches, lr cosine-annealed
    to 0 over all steps so the last epochs settle instead of bouncing."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(param_groups(model, lr))
    steps = epochs * -(-len(data) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(data), generator=gen)
        total = 0.0
        for start in range(0, len(data), batch_size):
            idx = order[start:start + batch_size]
            loss = model.loss(data.samples[idx], data.labels[idx], gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(data):.4f}")
    model.eval()


@torch.no_grad()
def accuracy(model: Target, data: LabelledData, batch_size: int = 500, seed: int = 0) -> float:
    """Percentage of ``data`` the model's ``predict`` gets right."""
    gen = torch.Generator().manual_seed(seed)
    correct = sum(
        (model.predict(data.samples[i:i + batch_size], gen) == data.labels[i:i + batch_size]).sum().item()
        for i in range(0, len(data), batch_size)
    )
    return 100.0 * correct / len(data)
