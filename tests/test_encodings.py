"""Encodings: shapes, the rate code's statistics, the latency rule by hand."""

import pytest
import torch

from fedsnn.task.models.encodings import encode, latency, rate, replicate
from fedsnn.errors import ConfigError


def test_replicate_shape_and_values() -> None:
    x = torch.rand(3, 1, 2, 2)
    y = replicate(x, 4)
    assert y.shape == (4, 3, 1, 2, 2)
    assert torch.equal(y[2], x)


def test_rate_is_binary_and_matches_probability() -> None:
    x = torch.tensor([[0.0, 0.25, 1.0, 1.7]])
    spikes = rate(x, 20000, torch.Generator().manual_seed(0))
    assert spikes.shape == (20000, 1, 4)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    means = spikes.mean(0)[0]
    assert means[0] == 0 and means[2] == 1 and means[3] == 1  # clamped to [0, 1]
    assert abs(means[1].item() - 0.25) < 0.01


def test_rate_same_distribution_as_snntorch() -> None:
    from snntorch import spikegen

    x = torch.full((1, 1000), 0.3)
    ours = rate(x, 50, torch.Generator().manual_seed(1)).mean().item()
    theirs = spikegen.rate(x, num_steps=50).mean().item()
    assert abs(ours - 0.3) < 0.01 and abs(theirs - 0.3) < 0.01


def test_latency_hand_computed() -> None:
    # T=5: t = floor((1 - v) * 4 + 0.5): v=1 -> 0, v=0.5 -> 2, v=0.3 -> floor(3.3) = 3, v=0 -> 4
    x = torch.tensor([[1.0, 0.5, 0.3, 0.0]])
    spikes = latency(x, 5)
    assert spikes.shape == (5, 1, 4)
    assert spikes.sum(0).tolist() == [[1.0, 1.0, 1.0, 1.0]]
    assert spikes[:, 0].argmax(0).tolist() == [0, 2, 3, 4]


def test_encode_rejects_unknown() -> None:
    with pytest.raises(ConfigError):
        encode(torch.rand(1, 2), 3, "delta")
