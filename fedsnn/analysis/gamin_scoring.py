"""GAMIN against ground truth: the paper's metrics, and checks the target cannot pass by itself.

The paper's A_T is the target's own accuracy on the inverted samples: an
untrained target that answers "1" to every input scores A_T 100% on class 1
(REFERENCE.md section 9). Leakage of training data needs evidence from
outside the target:

- **judge-recognised rate**: an independent judge (trained on the real
  data, never on the target's answers) calls the sample its target class;
- **data closeness**: the sample is more similar to the nearest training
  image of its class than to the nearest training image of the other
  classes, by SSIM (Wang et al.'s Gaussian window) and by distance in the
  judge's penultimate layer. Own and other pools have the same size, so a
  structureless sample is no likelier to be "closer" to either by count alone.

Both are rates with Wilson intervals. Their floors and ceilings come from
scoring random U(0, 1) probes, class-mean images and held-out real images
exactly like an inverted sample (``reference_scores``).

Shapes: samples [n, C, H, W] in [0, 1]; pools [N, C, H, W].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from fedsnn.analysis import stats
from attacks.blackbox import GaminResult, QueryOracle, fidelity, percent_correct, random_probes
from fedsnn.analysis.judges import ModelJudge
from fedsnn.task.data import LabelledData

SSIM_SIGMA, SSIM_TRUNCATE, SSIM_K1, SSIM_K2 = 1.5, 3.5, 0.01, 0.03  # Wang et al. 2004, skimage's gaussian_weights


@torch.no_grad()
def evaluate_gamin(results: Sequence[GaminResult], test_data: LabelledData, eval_oracle: QueryOracle,
                   num_random: int = 512, seed: int = 0, probes: str = "normal") -> list[GaminResult]:
    """Fill F_S, A_S and A_T using ground truth and an evaluation oracle (the paper's metrics).

    F_S uses one shared batch of ``num_random`` random inputs for every class,
    drawn from the attack's probe distribution (``GaminConfig.probes``);
    A_T is the target's own top-1 decision (argmax spike count for the SNN)
    on each class's samples. ``eval_oracle`` should be unbudgeted and separate
    from the attacker's, so these queries are not charged to the attack.
    Results whose status is not "ok" are returned unchanged (no metric of an
    invalid target means anything).
    """
    gen = torch.Generator().manual_seed(seed)
    inputs = random_probes(num_random, eval_oracle.input_shape, probes, gen)
    probe_scores = torch.cat([eval_oracle.query(chunk) for chunk in inputs.split(64)])
    evaluated = []
    for r in results:
        if r.status != "ok":
            evaluated.append(r)
            continue
        s_test = torch.cat([r.surrogate(x).argmax(-1) for x in test_data.samples.split(1000)])
        evaluated.append(replace(
            r,
            fidelity=fidelity(probe_scores, r.surrogate(inputs)),
            surrogate_accuracy=percent_correct(s_test, test_data.labels),
            target_accuracy=percent_correct(eval_oracle.predict(r.samples), r.target_class),
        ))
    return evaluated


def _gaussian_taps() -> torch.Tensor:
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # scipy.ndimage's radius: an 11-tap window
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-x**2 / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' region only: [N, C, H, W] -> [N, C, H-10, W-10].

    skimage filters with reflected borders and then averages only over the
    pixels at least a radius from the edge, which is exactly the valid region.
    """
    g = _gaussian_taps().to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def ssim_matrix(a: torch.Tensor, b: torch.Tensor, chunk: int = 8192, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """SSIM of every pair: a [n, C, H, W], b [m, C, H, W] in [0, 1] -> [n, m] (``dtype``).

    Wang et al.'s SSIM as scikit-image computes it with gaussian_weights=True,
    sigma 1.5, use_sample_covariance=False, data_range 1 (equal to it to
    1e-5 in float32 and 1e-12 in float64, tested), batched over all pairs because a nearest-neighbour search
    needs thousands of comparisons per sample. ``a`` is clipped to [0, 1].
    Images need H, W >= 11 (the window).
    """
    if min(a.shape[-2:]) < 11:
        raise ValueError(f"SSIM's Gaussian window needs images of at least 11x11, got {tuple(a.shape[-2:])}")
    a, b = a.detach().to(dtype).clamp(0, 1), b.detach().to(dtype)
    mu_a, mu_b = _blur(a), _blur(b)
    var_a, var_b = _blur(a * a) - mu_a**2, _blur(b * b) - mu_b**2
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    out = torch.empty(len(a), len(b), dtype=dtype)
    rows = max(1, chunk // max(len(b), 1))
    for i in range(0, len(a), rows):
        ai, mai, vai = a[i:i + rows, None], mu_a[i:i + rows, None], var_a[i:i + rows, None]  # [r, 1, C, H, W]
        cov = _blur((ai * b[None]).flatten(0, 1)).view(len(ai), len(b), *mu_b.shape[1:]) - mai * mu_b[None]
        num = (2 * mai * mu_b[None] + c1) * (2 * cov + c2)
        den = (mai**2 + mu_b[None] ** 2 + c1) * (vai + var_b[None] + c2)
        out[i:i + rows] = (num / den).flatten(2).mean(-1)
    return out


@dataclass(frozen=True)
class ReferencePools:
    """Training images the inverted samples are compared with, and for each class c two equal pools.

    images [N, C, H, W], labels [N], features [N, F] (judge penultimate) or None;
    own[c], other[c]: index arrays into ``images`` of equal length (class c / the other classes).
    """

    images: torch.Tensor
    labels: torch.Tensor
    features: torch.Tensor | None
    own: tuple[np.ndarray, ...]
    other: tuple[np.ndarray, ...]


def reference_pools(train: LabelledData, judge: ModelJudge | None, per_class: int = 270,
                    seed: int = 0) -> ReferencePools:
    """Draw ``per_class`` training images of each class (all, if fewer) and an equal other-class pool.

    ``train`` must be the data the target was trained on: closeness to it is
    the question. The other-class pool of c takes images evenly from every
    other class's draw.
    """
    rng = np.random.default_rng(seed)
    labels = train.labels.numpy()
    k = train.num_classes
    draws = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(k)]
    chosen = np.concatenate(draws)
    position = {c: np.arange(sum(map(len, draws[:c])), sum(map(len, draws[:c + 1]))) for c in range(k)}
    own, other = [], []
    for c in range(k):
        n = len(position[c])
        others = [position[d] for d in range(k) if d != c and len(position[d])]
        take = [o[: -(-n // len(others))] for o in others] if others else []
        pool = rng.permutation(np.concatenate(take))[:n] if take else np.array([], dtype=int)
        own.append(position[c][: len(pool)])
        other.append(pool)
    images = train.samples[torch.as_tensor(chosen)]
    features = judge.features(images) if judge is not None and judge.has_features else None
    return ReferencePools(images, train.labels[torch.as_tensor(chosen)], features, tuple(own), tuple(other))


@dataclass(frozen=True)
class Leakage:
    """Leakage checks on n samples meant to show ``target_class``.

    judge_labels [n] (None without a judge); ssim_own / ssim_other [n]: best SSIM in
    the own / other pool; feature_own / feature_other [n]: smallest judge-feature
    distance (None without features); nearest [n]: pool index of the most similar
    training image of either pool, by SSIM (for grids).
    """

    target_class: int
    judge_labels: np.ndarray | None
    ssim_own: np.ndarray
    ssim_other: np.ndarray
    feature_own: np.ndarray | None
    feature_other: np.ndarray | None
    nearest: np.ndarray

    @property
    def n(self) -> int:
        return len(self.ssim_own)

    def summary(self) -> dict:
        """Counts and Wilson intervals: judge_recognised, closer_ssim, closer_feature (each None if unmeasured)."""
        def rate(hits: np.ndarray | None) -> dict | None:
            if hits is None:
                return None
            interval = stats.wilson(int(hits.sum()), len(hits))
            return {"k": int(hits.sum()), "n": len(hits), "rate": interval.value, "low": interval.low,
                    "high": interval.high}

        recognised = None if self.judge_labels is None else self.judge_labels == self.target_class
        feature = None if self.feature_own is None else self.feature_own < self.feature_other
        return {"judge_recognised": rate(recognised), "closer_ssim": rate(self.ssim_own > self.ssim_other),
                "closer_feature": rate(feature), "median_ssim_own": float(np.median(self.ssim_own)),
                "median_ssim_other": float(np.median(self.ssim_other)),
                "judge_labels": None if self.judge_labels is None else np.bincount(
                    self.judge_labels, minlength=int(self.judge_labels.max()) + 1).tolist()}


@torch.no_grad()
def score_leakage(samples: torch.Tensor, target_class: int, judge: ModelJudge | None,
                  pools: ReferencePools) -> Leakage:
    """Judge verdicts and closeness to the training data for samples [n, C, H, W] meant as ``target_class``."""
    x = samples.detach().cpu().float().clamp(0, 1)
    own, other = pools.own[target_class], pools.other[target_class]
    both = np.concatenate([own, other])
    sim = ssim_matrix(x, pools.images[torch.as_tensor(both)])  # [n, |own| + |other|]
    s_own, s_other = sim[:, : len(own)], sim[:, len(own):]
    labels = judge(x).argmax(-1).numpy() if judge is not None else None
    f_own = f_other = None
    if pools.features is not None:
        dist = torch.cdist(judge.features(x).double(), pools.features[torch.as_tensor(both)].double())
        f_own, f_other = dist[:, : len(own)].min(1).values.numpy(), dist[:, len(own):].min(1).values.numpy()
    return Leakage(target_class, labels, s_own.max(1).values.numpy(), s_other.max(1).values.numpy(), f_own, f_other,
                   both[sim.argmax(1).numpy()])


def reference_scores(pools: ReferencePools, judge: ModelJudge | None, test: LabelledData, train: LabelledData,
                     num: int = 64, seed: int = 0) -> dict[str, list[Leakage]]:
    """Floors and ceilings, per class, scored exactly like inverted samples.

    random-probe: ``num`` U(0, 1) images per class (what a sample with no
    information scores; the judge's own bias shows here, e.g. grey -> "3");
    class-mean: the mean training image of the class (what the label alone
    gives); held-out: ``num`` real test images of the class (a real member of the class).
    """
    gen = torch.Generator().manual_seed(seed)
    shape = tuple(train.input_shape)
    out: dict[str, list[Leakage]] = {"random-probe": [], "class-mean": [], "held-out": []}
    for c in range(train.num_classes):
        out["random-probe"].append(score_leakage(torch.rand(num, *shape, generator=gen), c, judge, pools))
        mean = train.samples[train.labels == c].float().mean(0, keepdim=True)
        out["class-mean"].append(score_leakage(mean, c, judge, pools))
        held = test.samples[test.labels == c][:num]
        if len(held):
            out["held-out"].append(score_leakage(held, c, judge, pools))
    return out
