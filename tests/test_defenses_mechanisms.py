"""The defense mechanisms as tensor functions: clipping, top-k, quantisation, DP-SGD, accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.defense import privacy_spent
from fedsnn.errors import ConfigError
from fedsnn.task.data import LabelledData
from fedsnn.task.defenses import (
    apply_update, clip_by_norm, global_norm, quantize, rdp_epsilon, top_k, update_between,
)
from fedsnn.task.dp_sgd import per_sample_backend, per_sample_gradients, private_gradient
from fedsnn.task.models import ModelSpec, build_model


def random_update(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(12, 5, generator=g), "b": torch.randn(7, generator=g) * 3}


def test_clipping_bounds_the_norm_and_leaves_small_updates_alone():
    update = random_update()
    norm = global_norm(update)
    clipped = clip_by_norm(update, norm / 4)
    assert global_norm(clipped) == pytest.approx(norm / 4, rel=1e-5)
    assert all(torch.allclose(clipped[k] * 4, update[k], atol=1e-6) for k in update)  # direction kept
    untouched = clip_by_norm(update, norm * 2)
    assert all(torch.equal(untouched[k], update[k]) for k in update)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 1.0])
def test_top_k_keeps_exactly_k_largest_entries(fraction):
    update = random_update()
    flat = torch.cat([v.flatten() for v in update.values()])
    k = math.ceil(fraction * flat.numel())
    kept = torch.cat([v.flatten() for v in top_k(update, fraction).values()])
    assert int((kept != 0).sum()) == k
    assert kept.abs().max() == flat.abs().max()
    survivors = kept[kept != 0]
    assert survivors.abs().min() >= flat.abs().sort(descending=True).values[k - 1]
    assert torch.equal(kept[kept != 0], flat[kept != 0])  # values untouched


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_quantisation_has_2_to_the_b_levels_within_half_a_step(bits):
    update = {"w": torch.rand(8000, generator=torch.Generator().manual_seed(1)) - 0.3}  # every level populated
    q = quantize(update, bits)["w"]
    assert len(torch.unique(q)) == 2**bits
    assert len(torch.unique(quantize({"w": torch.randn(300)}, bits)["w"])) <= 2**bits
    step = (update["w"].max() - update["w"].min()) / (2**bits - 1)
    assert float((q - update["w"]).abs().max()) <= float(step) / 2 + 1e-5
    assert q.min() == pytest.approx(float(update["w"].min())) and q.max() == pytest.approx(float(update["w"].max()))


def test_update_round_trip_keeps_non_float_buffers():
    sent = {"w": torch.zeros(3), "n": torch.tensor(5)}
    returned = {"w": torch.tensor([1.0, -2.0, 0.5]), "n": torch.tensor(5)}
    update = update_between(sent, returned)
    assert set(update) == {"w"}
    rebuilt = apply_update(sent, update)
    assert torch.equal(rebuilt["w"], returned["w"]) and torch.equal(rebuilt["n"], sent["n"])


def test_accountant_epsilon_grows_with_steps_and_shrinks_with_noise():
    eps = [rdp_epsilon(1.0, 0.01, steps, 1e-5) for steps in (1, 10, 100, 1000)]
    assert eps == sorted(eps) and eps[0] < eps[-1]
    assert rdp_epsilon(4.0, 0.01, 100, 1e-5) < rdp_epsilon(1.0, 0.01, 100, 1e-5)
    assert rdp_epsilon(1.0, 0.01, 0, 1e-5) == 0.0


@pytest.mark.parametrize("defense", ["dp-client-fixed", "dp-server-fixed", "local-dp", "dp-sgd"])
def test_run_epsilon_grows_with_rounds(defense):
    cfg = RunConfig(defense=defense, mode="fedsgd", batch_size=8, num_rounds=4)
    spent = [privacy_spent(cfg, r, 2)["epsilon"] for r in range(0, 5)]
    assert spent[0] == 0.0 and all(a < b for a, b in zip(spent, spent[1:]))
    assert privacy_spent(RunConfig(defense="topk"), 3, 2)["epsilon"] is None


@pytest.mark.parametrize("key,value,expected", [
    ("defense", "homomorphic", "'dp-sgd'"), ("clip-norm", 0.0, "> 0"), ("noise-multiplier", -1.0, "> 0"),
    ("topk-fraction", 1.5, "<= 1"), ("quant-bits", 0, ">= 1"), ("quant-bits", 32, "1 to 16"),
    ("dp-delta", 0.5, "<= 0.1"),
])
def test_bad_defense_settings_stop_the_run_naming_key_value_and_choices(key, value, expected):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_mapping({key: value})
    assert key in str(err.value) and str(value) in str(err.value) and expected in str(err.value)


def tiny_data(n: int = 6, seed: int = 0) -> LabelledData:
    g = torch.Generator().manual_seed(seed)
    return LabelledData(torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10, 10)


@pytest.mark.parametrize("name", ["lenet", "snn-lenet"])
def test_per_sample_gradients_equal_one_backward_per_sample(name):
    model = build_model(ModelSpec(name, (1, 28, 28), 10, timesteps=4), seed=0)
    data = tiny_data(3)
    grads = per_sample_gradients(model, data, data.samples, data.labels)
    assert per_sample_backend(model) == ("opacus" if name == "lenet" else "torch.func")
    for i in range(3):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(data.samples[i : i + 1]), data.labels[i : i + 1]).backward()
        for pname, p in model.named_parameters():
            assert grads[pname].shape[0] == 3
            assert torch.allclose(grads[pname][i], p.grad, atol=1e-5, rtol=1e-4), pname
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())  # Opacus' hooks are gone


def test_dp_sgd_clips_each_sample_and_adds_noise_of_the_configured_scale():
    per_sample = {"w": torch.randn(4, 20000, generator=torch.Generator().manual_seed(3)) * 10}
    clip, sigma = 0.5, 2.0
    torch.manual_seed(0)
    noiseless = private_gradient(per_sample, clip, 0.0)["w"]
    norms = per_sample["w"].norm(dim=1)
    assert torch.allclose(noiseless, (per_sample["w"] * (clip / norms)[:, None]).sum(0) / 4, atol=1e-6)
    noisy = private_gradient(per_sample, clip, sigma)["w"]
    residual = (noisy - noiseless).numpy()
    assert np.std(residual) == pytest.approx(sigma * clip / 4, rel=0.03)  # N(0, (sigma C)^2) / B
    assert abs(np.mean(residual)) < 0.03 * sigma * clip / 4 * 10
