"""The one place that scores reconstructions against ground truth (evaluators only).

Attack code never imports this module: the attacker has no ground truth.
Per-sample records come first, then summaries (success rate, mean, median),
because outcomes are bimodal (a rebuilt sample scores 45-80 dB PSNR, a failed
one 3-6 dB) and a mean alone misleads.

Shapes: images [B, C, H, W] in [0, 1]; event/spike tensors [B, T, C, H, W].
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from skimage.metrics import structural_similarity

METRICS = ("mse", "psnr", "ssim", "ssim_uniform7", "l2")  # per-sample scores summarised and compared
SUCCESS_MSE = 1e-3  # DLG/iDLG success: MSE below it on [0, 1] images
MAX_PSNR = 100.0  # an exact reconstruction (MSE 0) scores this instead of +inf

SSIM_WINDOWS: dict[str, dict[str, object]] = {
    "gaussian": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
    "uniform7": {},
}

Judge = Callable[[torch.Tensor], torch.Tensor]  # samples [B, ...] -> logits [B, K]


def mse(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error, float [B]; inputs of equal shape [B, ...]."""
    _check_pair(reconstructed, original)
    return ((reconstructed.double() - original.double()) ** 2).flatten(1).mean(1).float()


def psnr(mse_values: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB from per-sample MSE: 10 log10(range^2 / mse), capped at MAX_PSNR."""
    ratio = data_range**2 / mse_values.double().clamp_min(data_range**2 * 10 ** (-MAX_PSNR / 10))
    return (10 * torch.log10(ratio)).float()


def ssim(reconstructed: torch.Tensor, original: torch.Tensor, window: str = "gaussian") -> torch.Tensor:
    """Per-image SSIM, float [B]; images [B, C, H, W] in [0, 1].

    ``window='gaussian'`` is SSIM as Wang et al. (2004) define it and the one
    reported as ``ssim``: Gaussian window sigma 1.5, K1 0.01, K2 0.03,
    population covariance, data range 1 (REFERENCE.md section 9).
    ``'uniform7'`` is scikit-image's default 7x7 uniform window with sample
    covariance, the value this project reported before (kept as
    ``ssim_uniform7``; 0.625 against 0.717 on one pair). Single-channel
    images are compared as 2-D arrays, RGB ones with ``channel_axis``.
    Reconstructions are clipped to [0, 1] first.
    """
    _check_pair(reconstructed, original)
    if reconstructed.dim() != 4:
        raise ValueError(f"SSIM needs images [B, C, H, W], got shape {tuple(reconstructed.shape)}")
    if window not in SSIM_WINDOWS:
        raise ValueError(f"SSIM window {window!r}; expected one of {tuple(SSIM_WINDOWS)}")
    options = SSIM_WINDOWS[window]
    rec = reconstructed.detach().clamp(0, 1).cpu().double().numpy()
    ref = original.detach().cpu().double().numpy()
    scores = []
    for r, o in zip(rec, ref):
        if r.shape[0] == 1:
            scores.append(structural_similarity(r[0], o[0], data_range=1.0, **options))
        else:
            scores.append(structural_similarity(r, o, data_range=1.0, channel_axis=0, **options))
    return torch.tensor(scores, dtype=torch.float32)


def l2(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Per-sample Euclidean distance ||x - x'||_2 (spike tensors, Table V/VI), float [B]."""
    _check_pair(reconstructed, original)
    return (reconstructed.double() - original.double()).flatten(1).norm(dim=1).float()


def match_originals(reconstructed: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
    """The original each reconstruction is scored against: the one assignment matcher.

    A batch's order is not leaked, and an attacker may rebuild fewer samples
    than the client used, so reconstructions [k, ...] are assigned to distinct
    originals [N, ...] (k <= N) by minimum total squared error (Hungarian,
    ``scipy.optimize.linear_sum_assignment``).

    Returns
    -------
    torch.Tensor
        long [k], ``chosen`` such that ``reconstructed[j]`` is matched to ``originals[chosen[j]]``.
    """
    if reconstructed.shape[1:] != originals.shape[1:] or len(reconstructed) > len(originals):
        raise ValueError(f"cannot match {tuple(reconstructed.shape)} reconstructions to {tuple(originals.shape)} "
                         "originals: sample shapes must agree and k <= N")
    rec, ref = reconstructed.detach().double().flatten(1), originals.detach().double().flatten(1)
    cost = torch.cdist(rec, ref).pow(2)  # [k, N]
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return torch.as_tensor(cols[np.argsort(rows)], dtype=torch.long)


def label_accuracy(predicted: torch.Tensor, true: torch.Tensor) -> float:
    """Fraction of positions where the labels agree (labels long [B])."""
    if predicted.shape != true.shape:
        raise ValueError(f"label shapes differ: {tuple(predicted.shape)} vs {tuple(true.shape)}")
    return float((predicted.cpu() == true.cpu()).float().mean()) if len(true) else math.nan


def label_multiset_accuracy(predicted: torch.Tensor, true: torch.Tensor) -> float:
    """Fraction of the true labels recovered as a multiset (order-free, for batch label inference)."""
    if len(true) == 0:
        return math.nan
    recovered = Counter(predicted.tolist()) & Counter(true.tolist())
    return sum(recovered.values()) / len(true)


@torch.no_grad()
def judge_correct(judge: Judge, samples: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """bool [B]: whether ``judge`` classifies each reconstruction as its true label."""
    return judge(samples).argmax(-1).cpu() == labels.cpu()


def attack_success_rate(judge: Judge, samples: torch.Tensor, labels: torch.Tensor) -> float:
    """ASR: accuracy of a pretrained judge on the reconstructions, true labels as target."""
    return float(judge_correct(judge, samples, labels).float().mean())


@dataclass(frozen=True)
class SampleRecord:
    """Scores of one reconstructed sample against the original it was matched to."""

    index: int
    matched_to: int
    mse: float
    psnr: float
    ssim: float
    l2: float
    label_correct: bool | None
    judge_correct: bool | None
    success: bool
    ssim_uniform7: float = math.nan

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def score_batch(
    reconstructed: torch.Tensor,
    original: torch.Tensor,
    original_labels: torch.Tensor,
    reconstructed_labels: torch.Tensor | None = None,
    judge: Judge | None = None,
    success_mse: float = SUCCESS_MSE,
    match: bool = True,
) -> list[SampleRecord]:
    """Per-original records for one attacked batch.

    Parameters
    ----------
    reconstructed, original : torch.Tensor
        [B, C, H, W] images or [B, T, C, H, W] spike tensors (SSIM is NaN for the latter).
    original_labels : torch.Tensor
        long [B]; the judge's target.
    reconstructed_labels : torch.Tensor | None
        long [B], aligned with ``reconstructed``; compared after matching.
    judge : callable | None
        images -> logits; run on the matched reconstructions (ASR).
    success_mse : float
        success = MSE below it.
    match : bool
        Reorder reconstructions by minimum-cost assignment first (``match_originals``).
    """
    _check_pair(reconstructed, original)
    perm = torch.argsort(match_originals(reconstructed, original)) if match else torch.arange(len(original))
    rec = reconstructed[perm]
    errors, distances = mse(rec, original), l2(rec, original)
    images = rec.dim() == 4
    similarity = ssim(rec, original) if images else torch.full((len(rec),), math.nan)
    uniform = ssim(rec, original, "uniform7") if images else torch.full((len(rec),), math.nan)
    labels_ok = None if reconstructed_labels is None else (reconstructed_labels[perm].cpu() == original_labels.cpu())
    judged = None if judge is None else judge_correct(judge, rec, original_labels)
    return [
        SampleRecord(
            index=i, matched_to=int(perm[i]), mse=float(errors[i]), psnr=float(psnr(errors[i : i + 1])[0]),
            ssim=float(similarity[i]), l2=float(distances[i]),
            label_correct=None if labels_ok is None else bool(labels_ok[i]),
            judge_correct=None if judged is None else bool(judged[i]),
            success=bool(errors[i] < success_mse), ssim_uniform7=float(uniform[i]),
        )
        for i in range(len(original))
    ]


def summarise(records: Sequence[SampleRecord]) -> dict[str, float]:
    """Success rate, ASR and label accuracy (where recorded), mean and median of every metric."""
    if not records:
        return {"count": 0.0}
    summary: dict[str, float] = {"count": float(len(records))}
    summary["success_rate"] = float(np.mean([r.success for r in records]))
    for flag, name in (("judge_correct", "asr"), ("label_correct", "label_accuracy")):
        values = [getattr(r, flag) for r in records if getattr(r, flag) is not None]
        if values:
            summary[name] = float(np.mean(values))
    for metric in METRICS:
        values = np.array([getattr(r, metric) for r in records], dtype=float)
        summary[f"{metric}_mean"] = float(np.mean(values))
        summary[f"{metric}_median"] = float(np.median(values))
    return summary


def _check_pair(reconstructed: torch.Tensor, original: torch.Tensor) -> None:
    if reconstructed.shape != original.shape:
        raise ValueError(f"shapes differ: reconstructed {tuple(reconstructed.shape)}, original {tuple(original.shape)}")
