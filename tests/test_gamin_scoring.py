"""GAMIN's leakage checks: SSIM against scikit-image, intervals, and the untrained-target control at the floor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from attacks.blackbox import GaminConfig, oracle_for_target, run_gamin
from fedsnn.analysis.gamin_scoring import reference_pools, reference_scores, score_leakage, ssim_matrix
from fedsnn.analysis.stats import wilson
from simulations.gamin.report import cell
from fedsnn.analysis.judges import ModelJudge, Recipe, fit_judge
from fedsnn.task.data import LabelledData, Split
from fedsnn.task.models import TargetSpec, build_target


def bars(n: int, seed: int) -> LabelledData:
    """28x28 images whose class c (of 10) is a bright horizontal bar at rows 2c+4, 2c+5, on dim noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    x = torch.rand(n, 1, 28, 28, generator=gen) * 0.25
    for i, c in enumerate(labels.tolist()):
        x[i, 0, 2 * c + 4: 2 * c + 6, 4:24] = 1.0
    return LabelledData(x, labels, 10)


def test_ssim_matrix_equals_scikit_image_gaussian_ssim() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 1, 16, 20, generator=gen), torch.rand(4, 1, 16, 20, generator=gen)
    b[0] = 0.7 * a[0] + 0.2  # one similar pair
    ref = [[structural_similarity(x[0].double().numpy(), y[0].double().numpy(), data_range=1.0, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False) for y in b] for x in a]
    assert ssim_matrix(a, b, dtype=torch.float64).numpy() == pytest.approx(np.array(ref), abs=1e-12)
    assert ssim_matrix(a, b).numpy() == pytest.approx(np.array(ref), abs=1e-5)
    rgb_a, rgb_b = torch.rand(2, 3, 12, 12, generator=gen), torch.rand(1, 3, 12, 12, generator=gen)
    ref_rgb = [structural_similarity(x.double().numpy(), rgb_b[0].double().numpy(), data_range=1.0, channel_axis=0,
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False) for x in rgb_a]
    assert ssim_matrix(rgb_a, rgb_b, dtype=torch.float64)[:, 0].numpy() == pytest.approx(np.array(ref_rgb), abs=1e-12)
    with pytest.raises(ValueError, match="11x11"):
        ssim_matrix(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_wilson_and_bootstrap_intervals() -> None:
    four = wilson(4, 10)  # 4/10 inverted classes: 95% Wilson 16.8%-68.7%
    assert four.value == 0.4 and four.low == pytest.approx(0.168, abs=1e-3) and four.high == pytest.approx(0.687, abs=1e-3)
    assert wilson(0, 64).low == 0.0 and wilson(0, 64).high == pytest.approx(0.0565, abs=1e-3)
    mean, interval = cell([0.0, 100.0, 0.0, 100.0, 0.0, 0.0], 1).split(" ", 1)  # Table II's cells: mean over units
    low, high = (float(x) for x in interval.strip("[]").split(", "))
    assert float(mean) == pytest.approx(100 / 3, abs=0.05) and 0 <= low < float(mean) < high <= 100
    assert cell([5.0, 5.0], 1) == "5.0 [5.0, 5.0]" and cell([7.0], 1) == "7.0 (n=1)" and cell([None], 1) == "-"


def test_pools_are_equal_sized_and_disjoint_by_class() -> None:
    train = bars(200, 1)
    pools = reference_pools(train, None, per_class=12, seed=0)
    for c in range(10):
        own, other = pools.own[c], pools.other[c]
        assert len(own) == len(other) == 12
        assert (pools.labels[torch.as_tensor(own)] == c).all() and (pools.labels[torch.as_tensor(other)] != c).all()


def test_untrained_control_scores_at_the_floor_and_real_images_at_the_ceiling() -> None:
    train, test = bars(300, 1), bars(100, 2)
    model, acc, _ = fit_judge(Split(train, test), Recipe("lenet", 4, lr=3e-3, batch_size=16, width=4), seed=0)
    assert acc > 0.9
    judge = ModelJudge(model)
    pools = reference_pools(train, judge, per_class=20, seed=0)
    refs = reference_scores(pools, judge, test, train, num=10, seed=0)
    untrained = build_target(TargetSpec("ann", (1, 28, 28), 10, hidden=64), seed=0)
    config = GaminConfig(budget=30 * 64, batch_size=32, num_samples=16, seed=0)
    results = run_gamin(oracle_for_target(untrained), config, classes=list(range(10)), log=lambda s: None)
    control = [score_leakage(r.samples, r.target_class, judge, pools) for r in results]

    def pooled(leaks, metric):
        hits = [leak.summary()[metric] for leak in leaks]
        interval = wilson(sum(h["k"] for h in hits), sum(h["n"] for h in hits))
        return interval.value, interval.low, interval.high

    for metric in ("judge_recognised", "closer_ssim", "closer_feature"):
        ceiling, floor, ours = pooled(refs["held-out"], metric), pooled(refs["random-probe"], metric), pooled(control, metric)
        assert ceiling[0] > 0.9, metric  # the check can see a real member of the class
        assert ours[2] < ceiling[1], metric  # the control is far below it ...
        assert ours[1] <= floor[2] + 0.05 and ours[0] < 0.35, (metric, ours, floor)  # ... and at the floor
