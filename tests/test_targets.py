"""GAMIN targets: fused SNN forward equals the snntorch per-step loop; decoding; save/load."""

from pathlib import Path

import pytest
import torch

from fedsnn.task.data import LabelledData
from fedsnn.errors import ConfigError
from fedsnn.task.models import TargetSpec, build_target, load_target, save_target
from fedsnn.task.target_training import accuracy, param_groups, train_target


def _snn(**kw: object) -> torch.nn.Module:
    model = build_target(TargetSpec("snn", (1, 6, 6), 4, hidden=50, **kw), seed=0)
    with torch.no_grad():  # larger weights so that both layers actually spike
        model.fc1.weight.mul_(6)
        model.fc2.weight.mul_(6)
    return model


@pytest.mark.parametrize("batch", [16, 64])
def test_fused_forward_equals_per_step_exactly(batch: int) -> None:
    model = _snn()
    spikes_in = model.encode(torch.rand(batch, 1, 6, 6), torch.Generator().manual_seed(0))
    with torch.no_grad():
        fused, reference = model.run(spikes_in), model.run_per_step(spikes_in)
    assert fused[0].sum() > 0  # not a silent network
    assert torch.equal(fused[0], reference[0]) and torch.equal(fused[1], reference[1])
    with torch.enable_grad():  # the autograd path (training) too
        assert torch.equal(model.run(spikes_in)[1], reference[1])


def test_leaky_dynamics_by_hand() -> None:
    model = _snn()
    # one neuron, constant current 0.6: mem 0.6, 1.02 (spike), 0.7*1.02+0.6-1 = 0.314
    spk, mem = model._neuron_loop(model.lif1, torch.full((3, 1, 1), 0.6))
    assert spk.flatten().tolist() == [0.0, 1.0, 0.0]
    assert torch.allclose(mem.flatten(), torch.tensor([0.6, 1.02, 0.314]))


def test_confidences_are_distributions() -> None:
    x = torch.rand(8, 1, 6, 6)
    for decoding in ("membrane-softmax", "spike-count"):
        scores = _snn(decoding=decoding).confidences(x, torch.Generator().manual_seed(0))
        assert scores.shape == (8, 4)
        assert torch.allclose(scores.sum(-1), torch.ones(8))
    assert _snn(encoding="latency").predict(x).shape == (8,)


def test_spec_validation() -> None:
    with pytest.raises(ConfigError):
        TargetSpec("cnn", (1, 6, 6), 4)
    with pytest.raises(ConfigError):
        TargetSpec("snn", (1, 6, 6), 4, decoding="first-spike")


def test_train_save_load_roundtrip(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 6, 6, generator=gen)
    y = (x.mean((1, 2, 3)) > x.mean()).long()  # learnable toy rule
    data = LabelledData(x, y, 2)
    model = build_target(TargetSpec("ann", (1, 6, 6), 2, hidden=32))
    train_target(model, data, epochs=30, batch_size=16, lr=1e-2, log=lambda s: None)
    acc = accuracy(model, data)
    assert acc > 80
    save_target(model, tmp_path / "t.pt", acc)
    loaded, recorded = load_target(tmp_path / "t.pt")
    assert recorded == acc and torch.equal(loaded(x), model(x))


def test_first_layer_lr_scaled_by_fan_in() -> None:
    small = build_target(TargetSpec("snn", (1, 28, 28), 10, hidden=8))
    large = build_target(TargetSpec("snn", (1, 112, 92), 40, hidden=8))
    assert [g["lr"] for g in param_groups(small, 1e-3)] == [1e-3, 1e-3]
    assert param_groups(large, 1e-3)[0]["lr"] == pytest.approx(1e-3 * 784 / 10304)
    assert sum(len(g["params"]) for g in param_groups(large, 1e-3)) == len(list(large.parameters()))
    ann = build_target(TargetSpec("ann", (1, 112, 92), 40, hidden=8))
    assert [g["lr"] for g in param_groups(ann, 1e-3)] == [1e-3, 1e-3]  # no threshold to overshoot
