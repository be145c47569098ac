"""GAMIN: k_t update and clipping, metrics by hand, config checks, a tiny end-to-end run."""

import math

import pytest
import torch

from fedsnn.analysis.gamin_scoring import evaluate_gamin, reference_pools
from attacks.blackbox import (GaminConfig, fidelity, invalid_target_reason, m_global, oracle_for_target, random_probes,
                             run_gamin, update_k)
from fedsnn.task.models import TargetSpec, build_target, soft_cross_entropy
from fedsnn.task.data import LabelledData
from fedsnn.errors import ConfigError
from simulations.gamin.report import comparison_rows
from simulations.gamin.units import done_units, invert_target, make_invalid, read_units


def test_update_k_and_clipping() -> None:
    # 0.001 + 0.001 * (0.5 * 2.0 - 0.4) = 0.0016
    assert update_k(0.001, 2.0, 0.4, gamma=0.5, lambda_k=0.001) == pytest.approx(0.0016)
    assert update_k(0.001, 1.0, 3.0, gamma=0.5, lambda_k=0.001) == 0.0  # 0.001 - 0.0025 -> clipped at 0
    assert update_k(0.9999, 10.0, 0.0, gamma=0.5, lambda_k=0.001) == 1.0  # 1.0049 -> clipped at 1


def test_m_global_by_hand() -> None:
    assert m_global(2.0, 0.4, 0.5) == pytest.approx(2.0 + 0.6)
    assert m_global(1.0, 3.0, 0.5) == pytest.approx(1.0 + 2.5)


def test_soft_cross_entropy_by_hand() -> None:
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # softmax: [.5, .5], [.75, .25]
    scores = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    expected = (math.log(2) + 0.5 * (-math.log(0.75) - math.log(0.25))) / 2
    assert soft_cross_entropy(logits, scores).item() == pytest.approx(expected, rel=1e-6)


def test_fidelity_by_hand() -> None:
    logits = torch.tensor([[0.0, 0.0]])  # softmax [.5, .5]
    assert fidelity(torch.tensor([[0.9, 0.1]]), logits) == pytest.approx(1 - 0.4)


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        GaminConfig(budget=100, batch_size=64)
    with pytest.raises(ConfigError):
        GaminConfig(architecture="transformer")
    with pytest.raises(ConfigError):
        GaminConfig(k0=1.5)
    with pytest.raises(ConfigError, match="gamin-probes"):
        GaminConfig(probes="gaussian")


def test_random_probes_follow_the_named_distribution() -> None:
    gen = torch.Generator().manual_seed(0)
    normal = random_probes(4000, (1, 5, 5), "normal", gen)
    uniform = random_probes(4000, (1, 5, 5), "uniform", gen)
    assert normal.shape == uniform.shape == (4000, 1, 5, 5)
    assert abs(normal.mean().item()) < 0.02 and abs(normal.std().item() - 1) < 0.02 and normal.min() < -3
    assert 0 <= uniform.min() and uniform.max() <= 1 and abs(uniform.mean().item() - 0.5) < 0.01
    with pytest.raises(ConfigError, match="gamin-probes"):
        random_probes(1, (1, 2, 2), "laplace", gen)


@pytest.mark.parametrize("kind,architecture,probes", [("ann", "fc", "normal"), ("snn", "fc", "normal"),
                                                      ("ann", "conv", "normal"), ("ann", "fc", "uniform")])
def test_tiny_end_to_end(kind: str, architecture: str, probes: str) -> None:
    target = build_target(TargetSpec(kind, (1, 8, 8), 3, hidden=30, timesteps=4))
    oracle = oracle_for_target(target, budget=10 * 32)  # room for 2 classes at 4 iterations of 2x16
    config = GaminConfig(budget=4 * 32, batch_size=16, num_samples=5, architecture=architecture, probes=probes)
    results = run_gamin(oracle, config, classes=[0, 2, 1], log=lambda s: None)
    assert [r.target_class for r in results] == [0, 2, 1]
    assert [r.queries for r in results] == [128, 128, 64]  # the third class hits the oracle's budget
    assert results[-1].oracle_exhausted and results[-1].iterations == 2
    assert oracle.used == 320
    r = results[0]
    assert r.iterations == 4 and 0 <= r.best_iteration < 4 and math.isfinite(r.m_global)
    assert r.samples.shape == (5, 1, 8, 8) and 0 <= r.samples.min() and r.samples.max() <= 1
    test = LabelledData(torch.rand(12, 1, 8, 8), torch.tensor([0, 1, 2] * 4), 3)
    evaluated = evaluate_gamin(results, test, oracle_for_target(target), num_random=32, probes=probes)
    for e in evaluated:
        assert 0 <= e.fidelity <= 1 and 0 <= e.surrogate_accuracy <= 100 and 0 <= e.target_accuracy <= 100


def test_classes_validated() -> None:
    oracle = oracle_for_target(build_target(TargetSpec("ann", (1, 4, 4), 3, hidden=8)))
    with pytest.raises(ConfigError):
        run_gamin(oracle, GaminConfig(budget=128), classes=[3])


def test_warmup_ignores_early_m_global() -> None:
    target = build_target(TargetSpec("ann", (1, 8, 8), 3, hidden=30))
    with pytest.raises(ConfigError):
        GaminConfig(warmup=-1)
    for warmup, first_allowed in ((3, 3), (10, 5)):  # 10 > 6 iterations: the last pair is kept
        config = GaminConfig(budget=6 * 32, batch_size=16, num_samples=4, warmup=warmup)
        (r,) = run_gamin(oracle_for_target(target), config, classes=[1], log=lambda s: None)
        assert r.iterations == 6 and first_allowed <= r.best_iteration < 6 and math.isfinite(r.m_global)


def test_device_validated() -> None:
    with pytest.raises(ConfigError, match="gamin-device"):
        GaminConfig(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            GaminConfig(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("kind", ["ann", "snn"])
def test_cuda_run_matches_shapes_and_returns_cpu_results(kind: str) -> None:
    target = build_target(TargetSpec(kind, (1, 8, 8), 3, hidden=30, timesteps=4)).cuda()
    config = GaminConfig(budget=4 * 32, batch_size=16, num_samples=5, device="cuda")
    (r,) = run_gamin(oracle_for_target(target), config, classes=[1], log=lambda s: None)
    assert r.samples.device.type == "cpu" and r.samples.shape == (5, 1, 8, 8)
    assert next(r.surrogate.parameters()).device.type == "cpu" and math.isfinite(r.m_global)


def test_probe_study_distills_on_each_distribution() -> None:
    from simulations.gamin.probe_study import PROBES, distill

    target = build_target(TargetSpec("ann", (1, 28, 28), 10, hidden=16))
    test = LabelledData(torch.rand(20, 1, 28, 28), torch.arange(20) % 10, 10)
    for name, probe in PROBES.items():
        x = probe(64, torch.Generator().manual_seed(0))
        assert x.shape == (64, 1, 28, 28), name
        a_s, entropy, counts = distill(oracle_for_target(target), probe, steps=2, seed=0, test=test)
        assert 0 <= a_s <= 100 and 0 <= entropy <= math.log(10) + 1e-4 and sum(counts) == 128


def test_non_finite_target_stops_with_invalid_target() -> None:
    target = build_target(TargetSpec("ann", (1, 8, 8), 3, hidden=30))
    assert invalid_target_reason(dict(target.state_dict())) is None
    with torch.no_grad():
        target.fc2.bias[1] = float("nan")
    assert "fc2.bias" in invalid_target_reason(dict(target.state_dict()))
    oracle = oracle_for_target(target)
    results = run_gamin(oracle, GaminConfig(budget=4 * 32, batch_size=16, num_samples=4), classes=[0, 1, 2],
                        log=lambda s: None)
    (r,) = results  # the first class stops at its first answer; no other class is tried
    assert r.status == "invalid-target" and "non-finite" in r.reason and r.iterations == 0 and oracle.used == 32
    (e,) = evaluate_gamin(results, LabelledData(torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2] * 2), 3),
                          oracle_for_target(target), num_random=32)
    assert e.target_accuracy is None  # no A_T 100% from a NaN model


def test_study_records_invalid_target_and_resumes(tmp_path) -> None:
    train = LabelledData(torch.rand(30, 1, 12, 12), torch.arange(30) % 3, 3)
    pools = reference_pools(train, None, per_class=4)
    config = GaminConfig(budget=2 * 32, batch_size=16, num_samples=4)
    target = build_target(TargetSpec("ann", (1, 12, 12), 3, hidden=16))
    lines = invert_target("ann", 0, target, [0, 1], config, train, None, pools, tmp_path, log=lambda s: None)
    assert [line["status"] for line in lines] == ["ok", "ok"] and lines[0]["judge_recognised"] is None
    assert 0 <= lines[0]["closer_ssim"]["rate"] <= 1 and (tmp_path / "samples" / "ann-s0-c1.pt").exists()
    again = invert_target("ann", 0, target, [0, 1, 2], config, train, None, pools, tmp_path, log=lambda s: None)
    assert [line["class"] for line in again] == [2]  # recorded units are skipped
    bad = invert_target("ann-invalid", 0, make_invalid(build_target(target.spec)), [0, 1], config, train, None, pools,
                        tmp_path, log=lambda s: None)
    assert [line["status"] for line in bad] == ["invalid-target"] * 2 and "fc1.weight" in bad[0]["reason"]
    assert done_units(tmp_path / "per_class.jsonl") == {("ann", 0, 0), ("ann", 0, 1), ("ann", 0, 2),
                                                         ("ann-invalid", 0, 0), ("ann-invalid", 0, 1)}
    assert len(read_units(tmp_path / "per_class.jsonl")) == 5


def test_report_compares_kinds_on_the_units_both_ran() -> None:
    def unit(kind: str, seed: int, c: int, recognised: int) -> dict:
        rate = {"rate": recognised / 4, "k": recognised, "n": 4}
        return {"kind": kind, "seed": seed, "class": c, "status": "ok", "target_accuracy": 100.0,
                "judge_recognised": rate, "closer_ssim": rate, "median_ssim_own": 0.1 * recognised}

    units = [unit("ann", s, c, 4) for s in (0, 1) for c in range(5)]
    units += [unit("snn", s, c, 0) for s in (0, 1) for c in range(5)] + [unit("snn", 2, 0, 4)]  # seed 2: no ANN pair
    head, rows = comparison_rows(units)
    judged = next(r for r in rows if r[1] == "judge-recognised %")
    assert judged[:5] == ["SNN vs ANN", "judge-recognised %", "10", "100.0", "0.0"]
    assert judged[5].startswith("-100.0") and judged[-1] == "lower" and float(judged[6]) < 0.05
    assert next(r for r in rows if r[1] == "A_T %")[-1] == "not different"  # equal everywhere: p = 1
    assert comparison_rows([u for u in units if u["kind"] == "ann"])[1] == []  # nothing to pair
