"""iDLG (Zhao et al., 2020): read the label from the gradient, then match the input.

Label rule (one sample): the cross-entropy gradient of the last Linear layer is
``dW[c, j] = (p_c - y_c) h_j``. With non-negative features h (sigmoid outputs,
spike counts) only the true class has a negative row, so
``y = argmin_c sum_j dW[c, j]`` (REFERENCE.md section 3). If every row sums to
zero (a silent last spiking layer: h = 0) the bias gradient ``p_c - y_c`` is used.

Batches (B > 1): the bias gradient ``db_c = mean_i (p_ic - y_ic)`` is negative
for a class present often enough; those classes are taken (most negative
first), and the B - k remaining slots are shared out among them in proportion
to ``-db_c`` (D'Hondt apportionment; a class with n samples has db close to
1/K - n/B on an untrained net). Limits: a class whose samples are all
confidently predicted may show db >= 0 and be missed; multiplicities are an
estimate; under fedavg the averaged gradient blurs the signal further.
"""

from __future__ import annotations

import torch

from attacks.config import AttackConfig
from attacks.matching import GradientMatcher
from attacks.observation import ObservedUpdate
from attacks.optimise import Attempt, dummy_attempt, run_attack
from attacks.result import Reconstruction


def infer_labels(gradient: dict[str, torch.Tensor], classifier: str, batch_size: int) -> torch.Tensor:
    """Labels of a batch from the classifier's gradient (rule in the module docstring).

    Parameters
    ----------
    gradient : dict
        name -> observed gradient; needs ``{classifier}.weight`` [K, hidden] and,
        for batches or a silent network, ``{classifier}.bias`` [K].
    classifier : str
        Prefix of the last Linear layer, e.g. 'fc'.
    batch_size : int

    Returns
    -------
    torch.Tensor
        long [batch_size], sorted with the most certain class first.
    """
    row_sums = gradient[f"{classifier}.weight"].sum(-1)
    bias = gradient.get(f"{classifier}.bias")
    if batch_size == 1:
        scores = row_sums if bias is None or bool(row_sums.abs().max() > 0) else bias
        return scores.argmin().view(1)
    scores = bias if bias is not None else row_sums
    order = torch.argsort(scores)
    present = [int(c) for c in order if scores[c] < 0][:batch_size] or [int(order[0])]
    counts = {c: 1 for c in present}
    for _ in range(batch_size - len(present)):
        c = max(present, key=lambda k: float(-scores[k]) / (counts[k] + 1))
        counts[c] += 1
    return torch.tensor([c for c in present for _ in range(counts[c])], dtype=torch.long)


def reconstruct(observed: ObservedUpdate, config: AttackConfig) -> Reconstruction:
    """Rebuild the client's batch from its update by iDLG.

    Labels: ``observed.labels`` when given, else ``infer_labels`` on the observed
    gradient. Returns samples [B, C, H, W] (images) or [B, T, C, H, W] (events).
    Never raises: problems become status 'diverged' or 'failed'.
    """

    def attempt(matcher: GradientMatcher, seed: int, deadline: float) -> Attempt:
        if observed.labels is not None:
            labels = torch.tensor(observed.labels, dtype=torch.long)
        else:
            labels = infer_labels(matcher.target, matcher.last_linear_name(), matcher.layout.batch)
        return dummy_attempt(matcher, config, seed, deadline, labels)

    return run_attack(observed, config, attempt, "idlg")
