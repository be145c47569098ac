"""Controls are scored exactly like reconstructions; gains are attack minus label-only guess."""

from __future__ import annotations

import pytest
import torch

from attacks.core import AuxiliaryData
from fedsnn.analysis import metrics, scoring


def _aux() -> AuxiliaryData:
    samples = torch.stack([torch.full((1, 16, 16), v) for v in (0.0, 0.2, 0.8, 1.0)])
    return AuxiliaryData(samples, torch.tensor([0, 0, 1, 1]), 3, "toy")


def test_guesses_are_the_mean_the_class_mean_and_the_start() -> None:
    start = torch.full((2, 1, 16, 16), 0.5)
    guesses = scoring.control_guesses(_aux(), torch.tensor([1, -1]), start, 2)
    torch.testing.assert_close(guesses["mean_image"], torch.full((2, 1, 16, 16), 0.5))
    torch.testing.assert_close(guesses["label_only"][0], torch.full((1, 16, 16), 0.9))  # class 1's mean
    torch.testing.assert_close(guesses["label_only"][1], torch.full((1, 16, 16), 0.5))  # unknown label: overall mean
    torch.testing.assert_close(guesses["initial"], start)
    assert "initial" not in scoring.control_guesses(_aux(), torch.tensor([0]), None, 1)
    # a class absent from the auxiliary data gets the overall mean
    torch.testing.assert_close(scoring.control_guesses(_aux(), torch.tensor([2]), None, 1)["label_only"][0],
                               torch.full((1, 16, 16), 0.5))


def test_controls_scored_like_reconstructions_and_gains() -> None:
    originals, labels = torch.full((2, 1, 16, 16), 0.9), torch.tensor([1, 1])
    reconstructed = originals + 0.01
    records = metrics.score_batch(reconstructed, originals, labels, labels, match=False)
    controls = scoring.score_controls(originals, labels, _aux(), labels, torch.full((2, 1, 16, 16), 0.5), None)
    assert set(controls) == set(scoring.CONTROLS)
    assert controls["label_only"][0].mse == pytest.approx(0.0, abs=1e-12)  # the class mean is the original
    assert controls["mean_image"][0].mse == pytest.approx(0.16, rel=1e-5)
    assert controls["label_only"][0].label_correct is True and controls["mean_image"][0].label_correct is None
    gains = scoring.gains(records, controls["initial"])
    assert gains[0]["psnr"] == pytest.approx(records[0].psnr - controls["initial"][0].psnr)
    with pytest.raises(ValueError):
        scoring.gains(records, controls["initial"][:1])
