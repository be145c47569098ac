"""Scoring an attack's output against ground truth it is handed (never fetched here).

Reconstructions are matched to the client's originals and scored per sample
(``fedsnn.analysis.metrics``); GAMIN's are in ``fedsnn.analysis.gamin_scoring``.
The ground truth itself is re-derived by the
experiment floor (``fedsnn.experiment.ground_truth``); nothing in this
module is reachable from ``attacks/``, and no Flower message carries it.
"""

from __future__ import annotations

import torch

from fedsnn.task.data import LabelledData
from fedsnn.analysis.metrics import Judge, SampleRecord, match_originals, score_batch


def score_reconstruction(
    reconstructed: torch.Tensor, reconstructed_labels: torch.Tensor | None, truth: LabelledData, judge: Judge | None
) -> tuple[list[SampleRecord], LabelledData]:
    """Per-sample records, and the matched originals with their labels (for grids).

    reconstructed: [k, C, H, W] images or [k, T, C, H, W] spike tensors.
    """
    k = min(len(reconstructed), len(truth))
    reconstructed = reconstructed[:k].detach().cpu().float()
    chosen = match_originals(reconstructed, truth.samples)  # the k originals it resembles most
    originals, labels = truth.samples[chosen], truth.labels[chosen]
    rec_labels = None if reconstructed_labels is None else reconstructed_labels[:k].cpu()
    records = score_batch(reconstructed, originals, labels, rec_labels, judge, match=False)
    return records, LabelledData(originals, labels, truth.num_classes, truth.class_names)
