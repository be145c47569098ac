"""Adam on flat per-slot states [V, n]: ``torch.optim.Adam`` (defaults) for each victim alone.

torch's Adam is elementwise, so one victim's update depends only on its own
row; each row keeps its own moments and step count, so victims that start at
different ticks (continuous batching) each get their own bias correction. The
operations are torch's single-tensor Adam in its order (lerp for the first
moment, mul + addcmul for the second, bias corrections in double precision),
which makes every row bit-equal to ``torch.optim.Adam`` on that victim alone
(tested in tests/attacks/test_batched_adam.py).
"""

from __future__ import annotations

import torch

from attacks.batched.slots import Project, SlotProgress

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults


class BatchedAdam:
    """Per-slot ``torch.optim.Adam(lr=lr)`` over x [V, n]; one evaluation per step."""

    def __init__(self, x0: torch.Tensor, lr: float) -> None:
        self.lr = lr
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(x0), torch.zeros_like(x0)
        self.steps = torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device)

    def reset(self, slots: torch.Tensor, alive: torch.Tensor | None = None) -> None:
        """Fresh moments for new victims in ``slots`` (``alive`` is not needed: rows are independent)."""
        self.exp_avg[slots], self.exp_avg_sq[slots], self.steps[slots] = 0.0, 0.0, 0

    def update(self, idx: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """One Adam step of the slots ``idx`` at states x [A, n] with gradients g [A, n]; returns the new x."""
        self.steps[idx] += 1
        step = self.steps[idx].double()[:, None]
        m = self.exp_avg[idx].lerp(g, 1 - BETA1)
        s = self.exp_avg_sq[idx].mul(BETA2).addcmul_(g, g, value=1 - BETA2)
        self.exp_avg[idx], self.exp_avg_sq[idx] = m, s
        step_size = (self.lr / (1 - BETA1 ** step)).to(x)
        denom = s.sqrt() / ((1 - BETA2 ** step) ** 0.5).to(x) + EPS
        return x - step_size * m / denom

    def after_eval(self, idx: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor, x: torch.Tensor,
                   progress: SlotProgress, project: Project | None) -> None:
        """Every evaluation starts a step: the stop rule first, then one update of the slots that go on."""
        stop = progress.step_start(idx, loss.double(), x[idx])
        go = idx[~stop]
        if len(go):
            moved = self.update(go, x[go], grad[~stop])
            x[go] = moved if project is None else project(go, moved)
