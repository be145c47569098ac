"""fedsnn.analysis.metrics on cases worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from fedsnn.analysis import metrics


def test_mse_and_psnr_of_a_known_error() -> None:
    original = torch.zeros(2, 1, 4, 4)
    reconstructed = torch.stack([torch.full((1, 4, 4), 0.1), torch.full((1, 4, 4), 0.01)])
    errors = metrics.mse(reconstructed, original)
    torch.testing.assert_close(errors, torch.tensor([0.01, 0.0001]))
    torch.testing.assert_close(metrics.psnr(errors), torch.tensor([20.0, 40.0]))  # 10 log10(1 / mse)
    assert float(metrics.psnr(torch.zeros(1))[0]) == metrics.MAX_PSNR  # exact match is capped, not inf


def test_ssim_is_one_for_identical_images_and_handles_rgb() -> None:
    g = torch.Generator().manual_seed(0)
    grey, rgb = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    torch.testing.assert_close(metrics.ssim(grey, grey), torch.ones(2))
    torch.testing.assert_close(metrics.ssim(rgb, rgb), torch.ones(2))
    assert float(metrics.ssim(1 - rgb, rgb).max()) < 0.5
    with pytest.raises(ValueError, match="SSIM"):
        metrics.ssim(torch.rand(1, 2, 1, 4, 4), torch.rand(1, 2, 1, 4, 4))


def test_l2_of_spike_tensors() -> None:
    original = torch.zeros(1, 2, 1, 2, 2)  # [B, T, C, H, W]
    reconstructed = original.clone()
    reconstructed[0, :, 0, 0, :] = 1.0  # four ones differ -> ||d|| = 2
    assert metrics.l2(reconstructed, original).tolist() == [2.0]


def test_assignment_recovers_the_permutation_of_a_batch() -> None:
    original = torch.stack([torch.full((1, 3, 3), v) for v in (0.0, 0.3, 0.6, 0.9)])
    perm = torch.tensor([2, 0, 3, 1])
    shuffled = original[perm] + 0.01  # shuffled[k] = original[perm[k]]
    chosen = metrics.match_originals(shuffled, original)  # shuffled[j] <-> original[chosen[j]]
    assert chosen.tolist() == perm.tolist()
    torch.testing.assert_close(shuffled, original[chosen] + 0.01)


def test_fewer_reconstructions_are_matched_to_distinct_originals() -> None:
    originals = torch.stack([torch.full((1, 2, 2), v) for v in (0.0, 0.3, 0.6, 0.9)])
    rebuilt = torch.stack([torch.full((1, 2, 2), v) for v in (0.64, 0.58)])  # both nearest 0.6
    assert metrics.match_originals(rebuilt, originals).tolist() == [3, 2]  # minimum total error, distinct


def test_label_accuracies() -> None:
    assert metrics.label_accuracy(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])) == 0.75
    assert metrics.label_multiset_accuracy(torch.tensor([2, 1, 1, 5]), torch.tensor([1, 2, 3, 1])) == 0.75


def test_attack_success_rate_is_judge_accuracy() -> None:
    def judge(samples: torch.Tensor) -> torch.Tensor:  # class = 1 if bright, else 0
        brightness = samples.flatten(1).mean(1)
        return torch.stack([0.5 - brightness, brightness - 0.5], dim=1)

    samples = torch.stack([torch.full((1, 2, 2), v) for v in (0.9, 0.1, 0.8, 0.7)])
    assert metrics.attack_success_rate(judge, samples, torch.tensor([1, 0, 0, 1])) == 0.75


def test_records_and_summary_of_a_bimodal_batch() -> None:
    original = torch.stack([torch.full((1, 16, 16), v) for v in (0.2, 0.5, 0.8)])
    reconstructed = original.clone()
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1.0  # +-1
    reconstructed[2] = 0.8 + 0.2 * checker  # one failure: mse 0.04, still closest to its original
    records = metrics.score_batch(
        reconstructed[[1, 2, 0]], original, torch.tensor([4, 5, 6]), torch.tensor([5, 6, 4]), success_mse=1e-3
    )
    assert [r.matched_to for r in records] == [2, 0, 1]
    assert [r.success for r in records] == [True, True, False]
    assert all(r.label_correct for r in records) and records[0].judge_correct is None
    summary = metrics.summarise(records)
    assert summary["success_rate"] == pytest.approx(2 / 3)
    assert summary["label_accuracy"] == 1.0
    assert summary["mse_median"] == 0.0 and summary["mse_mean"] == pytest.approx(0.04 / 3)
    assert summary["psnr_median"] == metrics.MAX_PSNR
    assert math.isnan(metrics.score_batch(torch.zeros(1, 2, 1, 2, 2), torch.zeros(1, 2, 1, 2, 2),
                                          torch.tensor([0]))[0].ssim)


def test_ssim_is_wang_gaussian_and_keeps_the_uniform_window_value() -> None:
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(3)
    a = torch.zeros(1, 1, 28, 28)
    a[..., 8:20, 10:18] = 1.0  # a bright bar, then noise on it
    b = (a + 0.3 * torch.rand(1, 1, 28, 28, generator=g)).clamp(0, 1)
    wang = structural_similarity(b[0, 0].double().numpy(), a[0, 0].double().numpy(), data_range=1.0,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert float(metrics.ssim(b, a)[0]) == pytest.approx(wang, abs=1e-6)
    uniform = float(metrics.ssim(b, a, "uniform7")[0])
    assert abs(uniform - wang) > 0.05  # the windows differ (0.58 vs 0.45 here), so the two are kept under two names
    (record,) = metrics.score_batch(b, a, torch.tensor([0]), match=False)
    assert record.ssim == pytest.approx(wang, abs=1e-6) and record.ssim_uniform7 == pytest.approx(uniform)
    with pytest.raises(ValueError, match="window"):
        metrics.ssim(b, a, "box")
