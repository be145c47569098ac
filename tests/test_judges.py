"""Judges: training end to end on tiny synthetic data, checkpoints, cache, DVS forward."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import fedsnn.analysis.judges as judges
from fedsnn.task.data.idx import write_idx
from fedsnn.analysis.judges import DVSGestureSNN, ModelJudge, Recipe, cache_paths, load_checkpoint, load_judge, train_judge


def write_synthetic_mnist(root: Path, n_train: int = 200, n_test: int = 60, seed: int = 0) -> Path:
    """MNIST-format IDX files whose class c is a bright horizontal bar at row 2c + 4 (learnable in seconds)."""
    rng = np.random.default_rng(seed)
    raw = root / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c + 4 : 2 * c + 6, 4:24] = 255
        write_idx(raw / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture()
def mnist_dir(tmp_path: Path) -> str:
    return str(write_synthetic_mnist(tmp_path / "data"))


def test_train_judge_end_to_end_writes_checkpoint_and_accuracy(mnist_dir: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    model, acc = train_judge("mnist", mnist_dir, cache_dir=cache, recipe=Recipe("lenet", 8, lr=3e-3, batch_size=16, width=4))
    assert acc > 0.5  # chance is 0.1
    checkpoint, meta = cache_paths("mnist", mnist_dir, 0, 20, 0, cache)
    info = json.loads(meta.read_text())
    assert checkpoint.exists() and info["test_accuracy"] == acc
    assert {"dataset", "data_dir", "seed", "epochs", "wall_time_s", "train_size", "code_version"} <= set(info)
    # round trip through torch.load(weights_only=True): same logits
    reloaded = load_checkpoint(checkpoint)
    x = torch.rand(5, 1, 28, 28)
    assert torch.allclose(ModelJudge(model)(x), ModelJudge(reloaded)(x))
    assert isinstance(torch.load(checkpoint, weights_only=True)["state_dict"], dict)


def test_cache_hit_does_not_retrain(mnist_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = load_judge("mnist", mnist_dir, cache_dir=cache)
    assert first is not None

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached judge was retrained")

    monkeypatch.setattr(judges, "fit_judge", no_training)
    second = load_judge("mnist", mnist_dir, cache_dir=cache)
    logits = second(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10) and not logits.requires_grad


def test_missing_judge_is_none_when_not_trainable(tmp_path: Path) -> None:
    assert load_judge("mnist", str(tmp_path), cache_dir=tmp_path / "c", train_if_missing=False) is None
    assert load_judge("lfw", str(tmp_path / "no-such-dir"), cache_dir=tmp_path / "c") is None


def test_cache_key_separates_data_dir_size_and_timesteps(tmp_path: Path) -> None:
    key = lambda *a: cache_paths(*a, cache_dir=tmp_path)[0].name  # noqa: E731
    assert key("mnist", "", 0, 20, 0) != key("mnist", str(tmp_path), 0, 20, 0)
    assert key("lfw", "d", 32, 20, 0) != key("lfw", "d", 64, 20, 0)
    assert key("dvs-gesture", "d", 0, 20, 0) != key("dvs-gesture", "d", 0, 10, 0)
    assert key("mnist", "d", 0, 20, 0) != key("mnist", "d", 0, 20, 1)


def test_cache_key_follows_the_recipe(tmp_path: Path, monkeypatch) -> None:
    """A changed recipe (say, LFW's stronger one) must not reuse the old recipe's checkpoint."""
    before = cache_paths("lfw", "d", 32, 20, 0, cache_dir=tmp_path)[0].name
    monkeypatch.setitem(judges.RECIPES, "lfw", replace(judges.RECIPES["lfw"], epochs=1))
    assert cache_paths("lfw", "d", 32, 20, 0, cache_dir=tmp_path)[0].name != before


def test_dvs_judge_forward_shape_and_surrogate_gradient() -> None:
    model = DVSGestureSNN(width=4)
    events = (torch.rand(2, 4, 2, 16, 16) < 0.2).float()  # [B, T, C, H, W], data layout
    logits = ModelJudge(model)(events)
    assert logits.shape == (2, 11) and torch.isfinite(logits).all()
    model.train()
    loss = torch.nn.functional.cross_entropy(model(events.transpose(0, 1)), torch.tensor([1, 2]))
    loss.backward()
    assert model.features[0][0].weight.grad.abs().sum() > 0  # ATan surrogate reaches the first conv



def test_unreadable_checkpoint_is_set_aside_and_retrained(mnist_dir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setattr(judges, "recipe_for", lambda dataset, data_dir: Recipe("lenet", 1, batch_size=32, width=4))
    checkpoint, meta = cache_paths("mnist", mnist_dir, 0, 20, 0, cache)  # the key includes that small recipe
    checkpoint.parent.mkdir(parents=True)
    torch.save({"code": print}, checkpoint)  # a global the weights-only loader refuses; torch's advice: weights_only=False
    with caplog.at_level("INFO", logger="fedsnn"):
        assert load_judge("mnist", mnist_dir, cache_dir=cache, train_if_missing=False) is None
        (aside,) = cache.glob("*.unreadable-*.pt")
        (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert str(checkpoint) in warning and str(aside) in warning and "weights_only" not in warning
        assert not checkpoint.exists()
        checkpoint.write_bytes(b"truncated")  # judge='auto': set aside again, then a new judge is trained
        judge = load_judge("mnist", mnist_dir, cache_dir=cache)
    assert judge is not None and checkpoint.exists() and meta.exists()
    assert len(list(cache.glob("*.unreadable-*.pt"))) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("judge for mnist: training lenet on 200 samples") for line in lines)
    assert any("held-out accuracy" in line and str(checkpoint) in line for line in lines)
