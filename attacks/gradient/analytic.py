"""Analytic attack: labels and last-layer inputs in closed form from the classifier's gradient.

For a final Linear layer z = W h + b under the mean cross-entropy of a batch
of B samples, dL/dW = (1/B) sum_i (p_i - y_i) h_i^T and dL/db = (1/B) sum_i
(p_i - y_i) (REFERENCE.md section 8; Phong et al. 2017, Geiping et al. 2020
Prop. 1). With one sample every row is a multiple of h, so for any class c
with db_c != 0::

    h = dW[c] / db[c]                      (exact; the row of largest |db| is used)

LeNet: h is the 588 sigmoid features. SNN-LeNet: its readout averages the
Linear layer over T, so h is the last hidden layer's spike rate, a multiple
of 1/T; rounding h * T to integers makes it exact (``quantised``).

Batches: the labels come from iDLG's rule (``infer_labels``); a class held by
exactly one sample gives that sample's h up to the other samples' p_jc h_j
terms (small while p_jc is small: "separable"); a class held by several gives
their mix ("mixed"). FedAvg updates are read as an averaged gradient
(``ObservedUpdate.observed_gradient``), exact only to first order.

The attack returns no image (``samples`` is empty): its output is the features
and their exactness in ``diagnostics['analytic']``; ``attacks.gradient.learned``
turns them into images.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from attacks.core import AttackConfig, ObservedUpdate, Reconstruction
from attacks.gradient.idlg import infer_labels
from fedsnn.task.models import build_model

RANK_TOLERANCE = 1e-6  # singular values below this fraction of the largest do not count


@dataclass(frozen=True)
class Features:
    """What the classifier's gradient gives away, one row per recovered class.

    Attributes
    ----------
    values : torch.Tensor
        float [R, hidden]: h for each recovered class (SNN: rounded to k/T when ``quantised``).
    labels : torch.Tensor
        long [R]: the class each row was read from.
    separable : torch.Tensor
        bool [R]: the class is held by exactly one sample of the batch (its row is that sample's h).
    batch_labels : torch.Tensor
        long [B]: the inferred labels of the whole batch (iDLG's rule).
    rank : int
        Numerical rank of dW (an upper bound on the distinct samples seen: 1 for one sample).
    rank1_residual : float
        ||dW - db h^T|| / ||dW|| for the row's h: 0 (to float precision) for one sample under fedsgd.
    grid_error : float
        SNN: largest |h * T - round(h * T)| before rounding (0 = exact spike counts); LeNet: nan.
    """

    values: torch.Tensor
    labels: torch.Tensor
    separable: torch.Tensor
    batch_labels: torch.Tensor
    rank: int
    rank1_residual: float
    grid_error: float

    def summary(self) -> dict[str, object]:
        """JSON-ready exactness facts (features as spike counts or rounded floats)."""
        return {
            "labels": self.labels.tolist(), "separable": self.separable.tolist(),
            "batch_labels": self.batch_labels.tolist(), "mixed_classes": self.labels[~self.separable].tolist(),
            "rank": self.rank, "rank1_residual": self.rank1_residual, "grid_error": self.grid_error,
            "feature_norm": [float(v.norm()) for v in self.values],
            "active_features": [int((v != 0).sum()) for v in self.values],
        }


def classifier_name(model: nn.Module) -> str:
    """State-dict prefix of the model's last nn.Linear, e.g. 'fc'."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError("the victim has no Linear layer")
    return names[-1]


def extract(gradient: dict[str, torch.Tensor], classifier: str, batch_size: int,
            timesteps: int | None = None, mean_probs: torch.Tensor | None = None, diagnose: bool = True,
            known_labels: torch.Tensor | None = None) -> Features:
    """Closed-form features from an (averaged) gradient.

    Parameters
    ----------
    gradient : name -> tensor; needs ``{classifier}.weight`` [K, hidden] and ``.bias`` [K].
    classifier : prefix of the last Linear layer.
    batch_size : samples behind the gradient.
    timesteps : T of an SNN (features rounded to k/T); None for an ANN.
    mean_probs : [K] the batch's estimated mean prediction (iDLG's batch label rule).
    known_labels : long [B], the batch's labels when the attacker knows them (``ObservedUpdate.labels``).
    diagnose : False skips rank and residual (nan, -1): the learned attack's thousands of simulated updates.
    """
    weight = gradient[f"{classifier}.weight"].double()
    bias = gradient[f"{classifier}.bias"].double()
    if known_labels is not None:
        batch_labels = known_labels.long()
    elif batch_size == 1:  # db_c = p_c - y_c: only the true class is negative
        batch_labels = bias.argmin().view(1)
    else:
        batch_labels = infer_labels(gradient, classifier, batch_size, mean_probs)
    counts = Counter(int(c) for c in batch_labels)
    classes = sorted(counts)
    values = torch.stack([weight[c] / bias[c] if bias[c] != 0 else torch.zeros_like(weight[c]) for c in classes])
    rank, residual = -1, float("nan")
    if diagnose:
        anchor = values[0] if batch_size > 1 else weight[bias.abs().argmax()] / bias[bias.abs().argmax()]
        residual = float((weight - torch.outer(bias, anchor)).norm() / weight.norm().clamp_min(1e-30))
        singular = torch.linalg.svdvals(weight)
        rank = int((singular > RANK_TOLERANCE * singular[0]).sum()) if float(singular[0]) > 0 else 0
    grid_error = float("nan")
    if timesteps:
        scaled = values * timesteps
        grid_error = float((scaled - scaled.round()).abs().max())
        values = scaled.round() / timesteps
    return Features(values.float(), torch.tensor(classes, dtype=torch.long),
                    torch.tensor([counts[c] == 1 for c in classes]), batch_labels.long(),
                    rank, residual, grid_error)


def features_of(observed: ObservedUpdate, mean_probs: torch.Tensor | None = None,
                classifier: str | None = None) -> Features:
    """``extract`` on what the server observed (fedavg: the averaged gradient); ``classifier``
    defaults to the last Linear layer of the spec's model."""
    classifier = classifier or classifier_name(build_model(observed.spec, seed=0))
    timesteps = observed.spec.timesteps if observed.spec.name == "snn-lenet" else None
    known = None if observed.labels is None else torch.tensor(observed.labels, dtype=torch.long)
    return extract(observed.observed_gradient(), classifier, observed.reconstruction_size,
                   timesteps, mean_probs, known_labels=known)


def reconstruct(observed: ObservedUpdate, config: AttackConfig) -> Reconstruction:
    """Labels (long [B]) and features (``diagnostics['analytic']``); no image. Never raises."""
    start = time.perf_counter()
    try:
        features = features_of(observed)
        facts = {"attack": "analytic", "analytic": features.summary(), "model_init": observed.spec.init}
        if len(features.values) <= 8:  # small enough for a JSON line: spike counts, or floats
            scale = observed.spec.timesteps if observed.spec.name == "snn-lenet" else None
            facts["features"] = [(v * scale).round().int().tolist() if scale else [float(a) for a in v]
                                 for v in features.values]
        exact = features.rank1_residual < 1e-4
        return Reconstruction(
            samples=torch.empty(0), labels=features.batch_labels, status="converged" if exact else "budget",
            reason=f"closed form; rank {features.rank}, rank-1 residual {features.rank1_residual:.2g}",
            final_loss=features.rank1_residual, wall_time_s=time.perf_counter() - start, diagnostics=facts,
        )
    except Exception as exc:  # an attack reports failure, it never raises
        reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        return Reconstruction.failed(reason, wall_time_s=time.perf_counter() - start)
