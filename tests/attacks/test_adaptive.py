"""Adaptive attacks: analytic features, the learned attack's view, Inverting Gradients, the relaxed forward."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from attacks import GROUPED, AttackConfig, AuxiliaryData, get_attack, reconstruct_all
from attacks.gradient import analytic, ig, learned
from attacks.gradient.learned import forward_features, global_model
from attacks.gradient.matching import relaxed_snn_logits
from fedsnn.task.models import ModelSpec, build_model, stacked_logits

SHAPE = (1, 8, 8)
SPECS = [ModelSpec("lenet", SHAPE, 4), ModelSpec("snn-lenet", SHAPE, 4, timesteps=6)]


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_analytic_features_equal_the_true_last_layer_inputs(spec, make_update):
    x, y = _images(1, 1), torch.tensor([2])
    observed = make_update(spec, x, y, lr=0.1)
    rec = get_attack("analytic")(observed, AttackConfig())
    true_h = forward_features(global_model(observed, torch.device("cpu")), x)[0][0].double()
    got = torch.tensor(rec.diagnostics["features"][0], dtype=torch.float64)
    facts = rec.diagnostics["analytic"]
    assert rec.status == "converged" and rec.labels.tolist() == [2] and facts["rank"] == 1
    if spec.name == "snn-lenet":  # spike counts over T: exact integers
        assert torch.equal(got, (true_h * spec.timesteps).round()) and facts["grid_error"] < 1e-3
    else:
        assert float((got - true_h).norm() / true_h.norm()) < 1e-5
    assert facts["rank1_residual"] < 1e-4


def test_analytic_batch_separates_unique_labels_and_flags_the_rest(make_update):
    spec = SPECS[0]
    observed = replace(make_update(spec, _images(3, 2), torch.tensor([0, 0, 1]), lr=0.1), labels=(0, 0, 1))
    features = analytic.features_of(observed)
    flags = dict(zip(features.labels.tolist(), features.separable.tolist()))
    assert sorted(features.batch_labels.tolist()) == [0, 0, 1]
    assert flags == {0: False, 1: True} and features.rank == 3


def _aux(n: int) -> AuxiliaryData:
    return AuxiliaryData(_images(n, 9), torch.arange(n) % 4, 4, "made-up auxiliary set")


FAST_LEARNED = dict(learned_samples=128, learned_epochs=3, learned_hidden=32)


def test_learned_images_come_from_the_auxiliary_data_not_the_victim(make_update):
    """Every auxiliary image is black below row 4; the victim is white there. The attack sees
    the victim only through its update, so it can only paint what the auxiliary data showed."""
    spec = SPECS[0]
    aux = _aux(256)
    aux.samples[..., 4:, :] = 0
    victim = _images(1, 3)
    victim[..., 4:, :] = 1
    observed = make_update(spec, victim, torch.tensor([1]), lr=0.1)
    config = AttackConfig(auxiliary=aux, learned_epochs=100, learned_samples=256, learned_hidden=32, learned_lr=1e-2)
    rec = get_attack("learned")(observed, config)
    assert rec.ok and rec.samples.shape == (1, *SHAPE)
    assert float(rec.samples[..., 4:, :].max()) < 0.1 and float(rec.samples[..., :4, :].mean()) > 0.2
    assert rec.diagnostics["auxiliary"] == "made-up auxiliary set"
    assert torch.allclose(rec.initial, aux.class_means()[1:2])  # the label-only guess


def test_learned_trains_one_decoder_per_round_and_reports_costs_apart(make_update, monkeypatch):
    spec = SPECS[1]
    updates = [make_update(spec, _images(1, s), torch.tensor([s % 4]), lr=0.1) for s in range(3)]
    calls = []
    real = learned.train_decoder
    monkeypatch.setattr(learned, "train_decoder", lambda *a, **k: calls.append(1) or real(*a, **k))
    recs = reconstruct_all(updates, AttackConfig(auxiliary=_aux(128), **FAST_LEARNED), "learned")
    assert len(calls) == 1 and all(r.ok for r in recs)
    decoder = recs[0].diagnostics["decoder"]
    assert decoder["victims"] == 3 and decoder["train_s"] > 0 and decoder["decode_s"] > 0
    assert set(recs[0].diagnostics["spike_flips"]) == {"sn1", "sn2", "sn3"}


def test_a_kept_decoder_is_reused_only_for_the_same_weights_training_and_aux_and_gives_a_retrains_output(
        make_update, monkeypatch):
    spec = SPECS[0]
    x, y = _images(2, 3), torch.tensor([1, 2])
    calls = []
    real = learned.train_decoder
    monkeypatch.setattr(learned, "train_decoder", lambda *a, **k: calls.append(1) or real(*a, **k))
    config = AttackConfig(auxiliary=_aux(128), **FAST_LEARNED)
    first = get_attack("learned")(make_update(spec, x, y, lr=0.1), config)
    again = get_attack("learned")(make_update(spec, _images(2, 4), torch.tensor([0, 3]), lr=0.1), config)
    assert len(calls) == 1 and not first.diagnostics["decoder"]["reused"] and again.diagnostics["decoder"]["reused"]
    assert again.diagnostics["decoder"]["train_s"] == first.diagnostics["decoder"]["train_s"]
    get_attack("learned")(make_update(spec, x, y, lr=0.05), config)  # other declared lr: another decoder
    get_attack("learned")(make_update(spec, x, y, lr=0.1), replace(config, auxiliary=_aux(96)))  # other aux data
    get_attack("learned")(make_update(spec, x, y, lr=0.1), replace(config, learned_epochs=2))  # other training
    assert len(calls) == 4
    learned.clear_decoders()
    retrained = get_attack("learned")(make_update(spec, x, y, lr=0.1), config)
    kept = get_attack("learned")(make_update(spec, x, y, lr=0.1), config)
    assert not retrained.diagnostics["decoder"]["reused"] and kept.diagnostics["decoder"]["reused"]
    assert torch.equal(retrained.samples, first.samples) and torch.equal(kept.samples, first.samples)


def test_learned_without_auxiliary_data_fails_without_raising(make_update):
    observed = make_update(SPECS[0], _images(1, 1), torch.tensor([0]))
    rec = get_attack("learned")(observed, AttackConfig())
    assert rec.status == "failed" and "auxiliary" in rec.reason


def test_learned_runs_on_batches_and_fedavg(make_update):
    spec = SPECS[0]
    batch = make_update(spec, _images(2, 4), torch.tensor([0, 3]), lr=0.1)
    fedavg = make_update(spec, _images(4, 5), torch.tensor([0, 1, 2, 3]), lr=0.1, local_steps=2, batch_size=2,
                         mode="fedavg")
    config = AttackConfig(auxiliary=_aux(128), learned_simulations=4, **FAST_LEARNED)
    for observed in (batch, fedavg):
        rec = get_attack("learned")(observed, config)
        assert rec.ok and rec.samples.shape == (observed.reconstruction_size, *SHAPE), rec.reason


def test_ig_victims_in_a_group_follow_their_own_trajectory(make_update):
    spec = SPECS[0]
    updates = [make_update(spec, _images(1, s), torch.tensor([s]), lr=0.1, seed=s) for s in range(2)]
    config = AttackConfig(iterations=6)
    together = ig.reconstruct_group(updates, config)
    alone = ig.reconstruct(updates[1], config)
    assert all(r.ok for r in together) and together[1].diagnostics["group_size"] == 2
    assert torch.allclose(together[1].samples, alone.samples, atol=1e-5)
    assert float(together[1].samples.min()) >= 0 and float(together[1].samples.max()) <= 1


def test_ig_with_relaxed_spikes_runs_and_records_sensitivity(make_update):
    spec = SPECS[1]
    observed = make_update(spec, _images(1, 6), torch.tensor([1]), lr=0.1)
    rec = get_attack("ig")(observed, AttackConfig(iterations=8, relax_spikes=True))
    assert rec.ok and rec.diagnostics["relaxed"] and "sn1" in rec.diagnostics["spike_flips"]


def test_relaxed_forward_becomes_the_exact_snn_as_temperature_vanishes():
    spec = SPECS[1]
    model = build_model(spec, seed=0)
    params = {n: p.detach().unsqueeze(0) for n, p in model.named_parameters()}
    x = _images(3, 7).unsqueeze(0)  # [V=1, B, C, H, W]
    exact = stacked_logits(params, x, spec, "image")
    assert torch.allclose(relaxed_snn_logits(params, x, spec, 1e-7), exact, atol=1e-4)
    assert not torch.allclose(relaxed_snn_logits(params, x, spec, 0.5), exact, atol=1e-2)


def test_grouped_attacks_are_registered():
    assert set(GROUPED) == {"learned", "ig"}
    with pytest.raises(Exception):
        reconstruct_all([], replace(AttackConfig()), "nope")
