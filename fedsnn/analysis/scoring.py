"""Scoring an attack's output against ground truth it is handed (never fetched here).

Reconstructions are matched to the client's originals and scored per sample
(``fedsnn.analysis.metrics``); GAMIN's are in ``fedsnn.analysis.gamin_scoring``.
The ground truth itself is re-derived by the
experiment floor (``fedsnn.experiment.ground_truth``); nothing in this
module is reachable from ``attacks/``, and no Flower message carries it.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from fedsnn.task.data import LabelledData
from fedsnn.analysis.metrics import Judge, SampleRecord, score_batch


def pick_originals(reconstructed: torch.Tensor, originals: torch.Tensor) -> np.ndarray:
    """Indices of the originals matched to each reconstruction, by minimum total MSE.

    reconstructed [k, ...] and originals [N, ...] with k <= N: an attacker that
    rebuilds fewer samples than the client used is scored against the k
    originals its reconstructions resemble most, each used at most once.
    """
    cost = torch.cdist(reconstructed.flatten(1).double(), originals.flatten(1).double()).pow(2)
    rows, cols = linear_sum_assignment(cost.numpy())
    return cols[np.argsort(rows)]


def score_reconstruction(
    reconstructed: torch.Tensor, reconstructed_labels: torch.Tensor | None, truth: LabelledData, judge: Judge | None
) -> tuple[list[SampleRecord], LabelledData]:
    """Per-sample records, and the matched originals with their labels (for grids).

    reconstructed: [k, C, H, W] images or [k, T, C, H, W] spike tensors.
    """
    k = min(len(reconstructed), len(truth))
    reconstructed = reconstructed[:k].detach().cpu().float()
    chosen = pick_originals(reconstructed, truth.samples)
    originals, labels = truth.samples[chosen], truth.labels[chosen]
    rec_labels = None if reconstructed_labels is None else reconstructed_labels[:k].cpu()
    records = score_batch(reconstructed, originals, labels, rec_labels, judge, match=False)
    return records, LabelledData(originals, labels, truth.num_classes, truth.class_names)
