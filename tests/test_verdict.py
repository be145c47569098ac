"""The verdict study on tiny synthetic MNIST: paired records, controls, resume, a report with intervals."""

from __future__ import annotations

from pathlib import Path

from attacks import ATTACKS
from attacks.gradient import idlg
from fedsnn.experiment.runs import read_jsonl
from simulations import verdict
from test_judges import write_synthetic_mnist


def test_verdict_pairs_models_scores_controls_and_resumes(tmp_path: Path, capsys) -> None:
    data = str(write_synthetic_mnist(tmp_path / "data"))
    out = tmp_path / "v"
    argv = ["--data-dir", data, "--out", str(out), "--attacks", "idlg,grnn", "--inits", "uniform-0.5",
            "--samples", "3", "--slow-samples", "1", "--seeds", "2", "--iterations", "2", "--grnn-iterations", "2",
            "--timesteps", "2", "--no-judge"]
    verdict.main(argv)
    records = read_jsonl(out / "records.jsonl")
    assert sorted((r["attack"], r["model"]) for r in records).count(("idlg", "snn-lenet")) == 3
    assert len(records) == 2 * 3 + 2 * 1
    by = {(r["attack"], r["model"], r["sample"]): r for r in records}
    for i in range(3):  # the same digit and model seed for both models: a paired design
        ann, snn = by[("idlg", "lenet", i)], by[("idlg", "snn-lenet", i)]
        assert ann["test_index"] == snn["test_index"] and ann["model_seed"] == snn["model_seed"] == i % 2
        assert {"control_mean_image", "control_label_only", "control_initial"} <= set(ann)
        assert ann["gain_ssim"] == ann["ssim"] - ann["control_label_only"]["ssim"]
        assert ann["budget"]["iterations"] == 2 and ann["reason"] and "time guard" not in ann["reason"]
    assert by[("grnn", "lenet", 0)]["auxiliary"] is None  # GRNN declares no auxiliary data
    report = (out / "verdict.md").read_text()
    assert "SNN leaks" in report and " [" in report and "| idlg | uniform-0.5 | snn-lenet | 3 |" in report
    assert (out / "paired-scatter.png").exists() and (out / "gains.png").exists()
    verdict.main(argv)  # resumable: nothing is attacked again
    assert len(read_jsonl(out / "records.jsonl")) == len(records)
    assert "samples in" not in capsys.readouterr().out.split("Verdict")[-1]


def test_an_attack_that_declares_auxiliary_data_gets_the_train_split(tmp_path: Path, monkeypatch) -> None:
    seen = []

    def peek(observed, config):
        seen.append((config.auxiliary.source, len(config.auxiliary.samples)))
        return idlg.reconstruct(observed, config)

    monkeypatch.setitem(ATTACKS, "peek", peek)
    monkeypatch.setattr(verdict, "NEEDS_AUXILIARY", frozenset({"peek"}))
    data = str(write_synthetic_mnist(tmp_path / "data"))
    verdict.main(["--data-dir", data, "--out", str(tmp_path / "v"), "--attacks", "peek", "--inits", "uniform-0.5",
                  "--slow-samples", "1", "--iterations", "1", "--timesteps", "2", "--no-judge"])
    assert seen == [("mnist train split (200 samples; the victims are test digits)", 200)] * 2
    assert all("train split" in r["auxiliary"] for r in read_jsonl(tmp_path / "v" / "records.jsonl"))


def test_grouped_attacks_run_per_model_seed_on_the_full_sample_count(tmp_path: Path, monkeypatch) -> None:
    groups = []
    real = verdict.reconstruct_all

    def spy(observed, config, attack):
        groups.append((attack, len(observed), config.seed, config.auxiliary is not None))
        return real(observed, config, attack)

    monkeypatch.setattr(verdict, "reconstruct_all", spy)
    data = str(write_synthetic_mnist(tmp_path / "data"))
    out = tmp_path / "v"
    verdict.main(["--data-dir", data, "--out", str(out), "--attacks", "learned", "--inits", "uniform-0.5",
                  "--samples", "3", "--slow-samples", "1", "--seeds", "2", "--timesteps", "2", "--no-judge"])
    # samples 0, 2 share model seed 0 and sample 1 has seed 1: one decoder per (model, seed), on the train split
    assert sorted(groups) == [("learned", 1, 1, True), ("learned", 1, 1, True), ("learned", 2, 0, True),
                              ("learned", 2, 0, True)]
    records = read_jsonl(out / "records.jsonl")
    assert len(records) == 2 * 3 and all(r["status"] == "converged" and "train split" in r["auxiliary"]
                                         for r in records)
    assert all(r["label_correct"] for r in records)  # the analytic label of a batch-1 update is exact


def test_a_features_only_attack_is_refused_with_the_reason(tmp_path: Path) -> None:
    data = str(write_synthetic_mnist(tmp_path / "data"))
    try:
        verdict.main(["--data-dir", data, "--out", str(tmp_path / "v"), "--attacks", "analytic", "--no-judge"])
    except SystemExit as stop:
        assert "analytic" in str(stop) and "not inputs" in str(stop)
    else:
        raise AssertionError("the verdict accepted an attack that reconstructs no input")
