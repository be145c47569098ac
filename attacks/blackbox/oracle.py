"""The black-box query interface GAMIN attacks through.

A ``QueryOracle`` answers one question: for a batch of inputs [B, C, H, W],
what confidence scores [B, K] does the target give? It counts every sample
as one query, refuses a batch that would overrun the budget (raising
``QueryBudgetExhausted`` before touching the target, so a refused batch costs
nothing) and returns detached tensors without gradient.

The target lives only inside closures built by ``oracle_for_target`` and
``oracle_for_classifier``; the oracle object itself holds plain callables,
numbers and shapes, so no chain of attribute accesses (``oracle.a.b[c]``)
reaches an ``nn.Module``, a parameter or a gradient. Python offers no hard
isolation: introspection (``__closure__``, ``gc``) can still find the model.
Running the target in another process would close that gap; within one
process, attack code is trusted to use only the public surface.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from fedsnn.task.models import Target

Answer = Callable[[torch.Tensor], torch.Tensor]


class QueryBudgetExhausted(RuntimeError):
    """A batch of ``requested`` queries would exceed the budget; nothing was answered."""

    def __init__(self, used: int, requested: int, budget: int) -> None:
        self.used, self.requested, self.budget = used, requested, budget
        super().__init__(f"query budget exhausted: {used} used + {requested} requested > budget {budget}")


class QueryOracle:
    """Confidence scores in exchange for counted queries.

    Parameters
    ----------
    scores, labels:
        Closures mapping inputs [B, *input_shape] to scores [B, K] and to
        predicted labels [B]; built by the factories below.
    input_shape:
        (C, H, W) of one query, what an attacker must know to form inputs.
    num_classes:
        K, the length of a score vector.
    budget:
        Maximum number of samples queried over the oracle's life; None = no limit.
    """

    __slots__ = ("_scores", "_labels", "input_shape", "num_classes", "budget", "_used")

    def __init__(
        self, scores: Answer, labels: Answer, input_shape: tuple[int, int, int], num_classes: int,
        budget: int | None = None,
    ) -> None:
        if budget is not None and budget < 0:
            raise ValueError(f"budget must be >= 0 or None, got {budget}")
        self._scores, self._labels = scores, labels
        self.input_shape, self.num_classes, self.budget = tuple(input_shape), num_classes, budget
        self._used = 0

    @property
    def used(self) -> int:
        """Samples queried so far."""
        return self._used

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self._used

    def _charge(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"queries must have shape [B, {', '.join(map(str, self.input_shape))}], got {list(x.shape)}")
        if self.budget is not None and self._used + len(x) > self.budget:
            raise QueryBudgetExhausted(self._used, len(x), self.budget)
        self._used += len(x)

    def query(self, x: torch.Tensor) -> torch.Tensor:
        """Scores [B, K] (rows sum to 1) for inputs [B, C, H, W]; costs B queries."""
        self._charge(x)
        return self._scores(x.detach())

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Top-1 labels [B] as the deployed model reports them; costs B queries."""
        self._charge(x)
        return self._labels(x.detach())


def invalid_target_reason(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """Why a model with these named weights is no target to invert, or None.

    A model holding NaN or infinite weights answers NaN scores (or argmax 0)
    to every query: "inverting" it measures nothing, and its A_T would read
    100% for class 0. The operator checks before building the oracle; the
    attack also stops at the first non-finite answer (``attack_class``).
    """
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if not bad:
        return None
    return f"non-finite weights in {len(bad)} of {len(tensors)} tensors ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"


def oracle_for_target(target: Target, budget: int | None = None, seed: int = 0) -> QueryOracle:
    """Wrap a GAMIN FC target; SNN rate encoding draws from a private seeded generator.

    Queries run on the target's device and answers come back on the query's device.

    Predictions use the target's own rule (argmax spike count for the SNN).
    """
    device = next(target.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)

    @torch.no_grad()
    def scores(x: torch.Tensor) -> torch.Tensor:
        return target.confidences(x.to(device), gen).detach().to(x.device)

    @torch.no_grad()
    def labels(x: torch.Tensor) -> torch.Tensor:
        return target.predict(x.to(device), gen).detach().to(x.device)

    return QueryOracle(scores, labels, target.spec.input_shape, target.spec.num_classes, budget)


def oracle_for_classifier(
    model: nn.Module, input_shape: tuple[int, int, int], num_classes: int, budget: int | None = None
) -> QueryOracle:
    """Wrap a logit model (LeNet, or SNN-LeNet whose logits are time-averaged
    membranes): scores = softmax(logits), labels = argmax(logits)."""

    device = next(model.parameters()).device

    @torch.no_grad()
    def logits(x: torch.Tensor) -> torch.Tensor:
        model.eval()
        return model(x.to(device)).detach().to(x.device)

    return QueryOracle(
        lambda x: logits(x).softmax(-1), lambda x: logits(x).argmax(-1), input_shape, num_classes, budget
    )
