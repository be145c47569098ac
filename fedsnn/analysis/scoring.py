"""Scoring an attack's output against ground truth it is handed (never fetched here).

Reconstructions are matched to the client's originals and scored per sample
(``fedsnn.analysis.metrics``); GAMIN's are in ``fedsnn.analysis.gamin_scoring``. The ground truth itself is re-derived by the
experiment floor (``fedsnn.experiment.ground_truth``); nothing in this
module is reachable from ``attacks/``, and no Flower message carries it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attacks.core import AuxiliaryData

from fedsnn.task.data import LabelledData
from fedsnn.analysis.metrics import Judge, SampleRecord, match_originals, score_batch

CONTROLS = ("mean_image", "label_only", "initial")  # guesses that need no leakage but the label's
GAIN_METRICS = ("ssim", "psnr")  # headline: how far the attack is above the label-only guess


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


def control_guesses(aux: AuxiliaryData, inferred_labels: torch.Tensor | None,
                    initial: torch.Tensor | None, count: int) -> dict[str, torch.Tensor]:
    """What an attacker holds without reading the update, [count, ...] each, aligned with the reconstructions.

    'mean_image': the mean of the auxiliary data (data the attacker may hold);
    'label_only': the class mean of each inferred label (the label alone, which
    iDLG reads off the last layer); 'initial': the attack's own starting dummy
    (absent when the attack did not record one). A label outside the classes
    (a failed attack's -1) gets the overall mean.
    """
    mean = aux.mean()
    guesses = {"mean_image": mean.expand(count, *mean.shape).clone()}
    if inferred_labels is not None:
        labels = inferred_labels[:count].long().cpu()
        known = (labels >= 0) & (labels < aux.num_classes)
        guesses["label_only"] = torch.where(known.view(-1, *[1] * mean.dim()),
                                            aux.class_means()[labels.clamp(0, aux.num_classes - 1)], mean)
    if initial is not None and initial.numel():
        guesses["initial"] = initial[:count].detach().cpu().float()
    return guesses


def score_controls(originals: torch.Tensor, original_labels: torch.Tensor, aux: AuxiliaryData,
                   inferred_labels: torch.Tensor | None, initial: torch.Tensor | None,
                   judge: Judge | None) -> dict[str, list[SampleRecord]]:
    """Each control scored exactly like a reconstruction, against the same (matched) originals.

    originals [k, ...] and original_labels [k] are those the reconstructions
    were matched to, in reconstruction order; the judge's verdict on the
    controls is ASR's floor.
    """
    k = len(originals)
    labels = None if inferred_labels is None else inferred_labels[:k].long().cpu()
    return {name: score_batch(guess.to(originals.dtype), originals, original_labels,
                              labels if name == "label_only" else None, judge, match=False)
            for name, guess in control_guesses(aux, labels, initial, k).items()}


def gains(records: Sequence[SampleRecord], control: Sequence[SampleRecord]) -> list[dict[str, float]]:
    """Per sample, the attack's score minus the control's on the same original (GAIN_METRICS)."""
    if len(records) != len(control):
        raise ValueError(f"{len(records)} records against {len(control)} control records")
    return [{m: getattr(r, m) - getattr(c, m) for m in GAIN_METRICS} for r, c in zip(records, control)]
