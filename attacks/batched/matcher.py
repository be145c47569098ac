"""The gradient-matching loss of many victims at once (``GradientMatcher.loss`` stacked on a slot axis)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attacks.batched import lenet_kernel
from attacks.gradient import GradientMatcher
from fedsnn.task.models import soft_cross_entropy, stacked_logits


class StackedMatcher:
    """``GradientMatcher.loss`` for V victims of one architecture and dummy layout.

    params / target: name -> [V, ...] (row v: the global weights / observed
    gradient of the victim in slot v; ``load`` swaps a slot's victim).
    kernel: 'auto' evaluates through ``lenet_kernel`` where it applies (LeNet,
    static images, B = 1, float32 on the CPU), 'torch' always through autograd.
    """

    def __init__(self, matchers: Sequence[GradientMatcher], kernel: str = "auto") -> None:
        first = matchers[0]
        self.spec, self.layout = first.observed.spec, first.layout
        self.kind = "image" if first.layout.kind == "image" else "steps"
        self.params = {n: torch.stack([m.params[n].detach() for m in matchers]) for n in first.params}
        self.target = {n: torch.stack([m.target[n] for m in matchers]) for n in first.target}
        self._index: torch.Tensor | None = None
        self.fast = kernel == "auto" and all(lenet_kernel.applies(self.spec.name, self.kind, self.layout.batch, t)
                                             for t in (self.params, self.target))
        self._flat: tuple | None = None

    def load(self, slot: int, matcher: GradientMatcher) -> None:
        """Put another victim (same architecture and layout) in row ``slot``."""
        for n, p in self.params.items():
            p[slot] = matcher.params[n].detach()
        for n, t in self.target.items():
            t[slot] = matcher.target[n]
        self._index, self._flat = None, None

    def _select(self, victims: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        if self._index is None or not torch.equal(self._index, victims):
            self._index = victims.clone()
            self._params = {n: p[victims].requires_grad_(True) for n, p in self.params.items()}
            self._target = {n: t[victims] for n, t in self.target.items()}
        return self._params, self._target

    def loss(self, victims: torch.Tensor, x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """L_G per victim [A]; x: [A, *layout.shape] dummies, probs: [A, B, K]."""
        if self.fast and x.dtype == torch.float32 and probs.dtype == torch.float32:
            if self._flat is None:
                self._flat = lenet_kernel.flat_weights(self.params), lenet_kernel.flat_weights(self.target)
            return lenet_kernel.matching_loss(x, probs, victims, *self._flat)
        params, target = self._select(victims)
        with torch.enable_grad():
            ce = soft_cross_entropy(stacked_logits(params, x, self.spec, self.kind), probs)
            grads = dict(zip(params, torch.autograd.grad(ce.sum(), list(params.values()), create_graph=True)))
            return sum(((grads[n] - target[n]) ** 2).flatten(1).sum(1) for n in target)  # type: ignore[return-value]
