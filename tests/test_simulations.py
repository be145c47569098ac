"""Table IV and Tables V/VI scripts on tiny data: outputs exist, resume works, generator and l2 are right."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import torch

from attacks import AttackConfig

from fedsnn.task.data import LabelledData
from simulations import table4, table5_6
from test_judges import write_synthetic_mnist


def test_table4_writes_csv_markdown_png_and_resumes(tmp_path: Path, capsys) -> None:
    data = str(write_synthetic_mnist(tmp_path / "data"))
    out = tmp_path / "t4"
    argv = ["--datasets", "mnist", "--attacks", "idlg", "--models", "lenet,snn-lenet", "--samples", "2",
            "--snn-samples", "1", "--timesteps", "4", "--data-dir", data, "--out", str(out),
            "--time-budget", "3", "--snn-time-budget", "1", "--cache-dir", str(tmp_path / "cache")]
    table4.main(argv)
    rows = (out / "records.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 and rows[0].startswith("dataset,model,attack")
    table = (out / "table4.md").read_text()
    assert "| mnist | idlg | lenet | 2 |" in table and "(88.3)" in table and "test accuracy" in table
    assert (out / "grid.png").stat().st_size > 1000
    assert json.loads((out / "invocations.jsonl").read_text().splitlines()[0])["code_version"]
    table4.main(argv)  # resumable: nothing left to run
    assert "0 attacks to run (3 already recorded)" in capsys.readouterr().out
    assert len((out / "records.csv").read_text().splitlines()) == 4


def test_table4_batched_records_equal_one_at_a_time(tmp_path: Path, monkeypatch) -> None:
    data = str(write_synthetic_mnist(tmp_path / "data"))
    monkeypatch.setattr(table4, "AttackConfig", partial(AttackConfig, max_eval=4))  # short runs
    train = table4.load_dataset("mnist", data, timesteps=4, seed=0).train
    tasks = [table4.Task("mnist", "lenet", "dlg", i, index, data, 0, 0.1, 4, None, str(tmp_path / "cache"), False,
                         iterations=3)
             for i, index in enumerate(table4.sample_indices("mnist", len(train), 3, 0))]
    batched = table4.run_batch(tasks)
    assert all(r["budget"]["iterations"] == 3 and r["iterations"] <= 3 for r in batched)  # the task's budget is used
    for task, record in zip(tasks, batched):
        alone = table4.run_task(task)  # seed = sample in both
        assert record.keys() == alone.keys()
        for key in ("sample", "train_index", "label", "model_seed", "status", "evaluations", "inferred_label"):
            assert record[key] == alone[key], key
        assert record["final_loss"] == pytest.approx(alone["final_loss"], rel=1e-2)


def test_table4_batches_group_cells_and_leave_grnn_alone() -> None:
    def task(attack: str, model: str, i: int) -> table4.Task:
        return table4.Task("mnist", model, attack, i, i, "", 0, 0.1, 4, None, "")

    tasks = [task("idlg", "lenet", i) for i in range(5)] + [task("idlg", "snn-lenet", i) for i in range(2)] \
        + [task("grnn", "lenet", i) for i in range(2)]
    units = table4.batches(tasks, size=4, workers=1)
    assert [[(t.model, t.attack, t.sample) for t in u] for u in units] == [
        [("lenet", "idlg", i) for i in range(4)], [("lenet", "idlg", 4)],
        [("snn-lenet", "idlg", 0), ("snn-lenet", "idlg", 1)], [("lenet", "grnn", 0)], [("lenet", "grnn", 1)]]
    assert [len(u) for u in table4.batches(tasks[:5], size=64, workers=2)] == [3, 2]  # every worker gets some


def test_table5_6_on_tiny_synthetic_events(tmp_path: Path) -> None:
    out = tmp_path / "t5"
    table5_6.main(["--out", str(out), "--attacks", "idlg", "--samples", "1", "--timesteps", "4",
                   "--synthetic-size", "16", "--synthetic-train", "44", "--synthetic-test", "22", "--judge-width", "4",
                   "--judge-epochs", "1", "--iterations", "2", "--pairs-per-class", "3"])
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 12 and {r["algorithm"] for r in records} == {"post", "in"}
    assert all(r["source"] == "synthetic" for r in records)
    assert "NOT comparable" in (out / "table5_6.md").read_text()
    assert (out / "thresholds.png").exists() and json.loads((out / "table6.json").read_text())["source"] == "synthetic"


def test_synthetic_gestures_are_binary_events_of_each_class() -> None:
    data = table5_6.synthetic_gestures(22, timesteps=6, size=16, seed=0)
    assert data.samples.shape == (22, 6, 2, 16, 16) and data.is_event
    assert set(data.samples.unique().tolist()) <= {0.0, 1.0}
    assert sorted(data.labels.unique().tolist()) == list(range(11))
    assert data.samples[:, :, 0].mean() > 0.011  # ON events beyond the 1% noise


def test_pairwise_l2_intra_inter_by_hand() -> None:
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]]).view(3, 1, 1, 1, 2)
    data = LabelledData(x, torch.tensor([0, 0, 1]), 2)
    stats = table5_6.pairwise_l2(data, per_class=5)
    assert stats["intra"]["mean"] == 5.0 and stats["intra"]["pairs"] == 1  # |(3,4) - (0,0)|
    assert stats["inter"]["pairs"] == 2 and abs(stats["inter"]["mean"] - (1 + 18**0.5) / 2) < 1e-9
    assert stats["to_empty"]["max"] == 5.0 and stats["to_empty"]["pairs"] == 3
