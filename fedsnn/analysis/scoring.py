"""Scoring an attack's output against ground truth it is handed (never fetched here).

Reconstructions are matched to the client's originals and scored per sample
(``fedsnn.analysis.metrics``); GAMIN's ground-truth metrics (F_S, A_S, A_T)
are computed here too. The ground truth itself is re-derived by the
experiment floor (``fedsnn.experiment.ground_truth``); nothing in this
module is reachable from ``attacks/``, and no Flower message carries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from attacks.blackbox import GaminResult, QueryOracle, fidelity, percent_correct, random_probes

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


@torch.no_grad()
def evaluate_gamin(results: Sequence[GaminResult], test_data: LabelledData, eval_oracle: QueryOracle,
                   num_random: int = 512, seed: int = 0, probes: str = "normal") -> list[GaminResult]:
    """Fill F_S, A_S and A_T using ground truth and an evaluation oracle (analysis side only).

    F_S uses one shared batch of ``num_random`` random inputs for every class,
    drawn from the attack's probe distribution (``GaminConfig.probes``);
    A_T is the target's own top-1 decision (argmax spike count for the SNN)
    on each class's samples. ``eval_oracle`` should be unbudgeted and separate
    from the attacker's, so these queries are not charged to the attack.
    """
    gen = torch.Generator().manual_seed(seed)
    inputs = random_probes(num_random, eval_oracle.input_shape, probes, gen)
    probe_scores = torch.cat([eval_oracle.query(chunk) for chunk in inputs.split(64)])
    evaluated = []
    for r in results:
        s_test = torch.cat([r.surrogate(x).argmax(-1) for x in test_data.samples.split(1000)])
        evaluated.append(replace(
            r,
            fidelity=fidelity(probe_scores, r.surrogate(inputs)),
            surrogate_accuracy=percent_correct(s_test, test_data.labels),
            target_accuracy=percent_correct(eval_oracle.predict(r.samples), r.target_class),
        ))
    return evaluated
