"""The one soft-label cross-entropy every floor uses (clients' loss, gradient matching, GAMIN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch axis of -sum_k p_k log softmax(logits)_k.

    logits, target_probs: [..., B, K] -> [...]: a scalar for one batch [B, K],
    one value per victim for stacked victims [V, B, K]. With one-hot
    ``target_probs`` this is exactly ``F.cross_entropy``, the clients' loss;
    DLG passes softmax(free logits), GAMIN the target's confidence scores.
    """
    return -(target_probs * F.log_softmax(logits, dim=-1)).sum(-1).mean(-1)
