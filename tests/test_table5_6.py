"""Tables V and VI on made event recordings: N-MNIST .bin files (judged) and DVS128 Gesture cuts (no judge)."""

from __future__ import annotations

import json

from test_data_events import make_cuts, make_nmnist

from fedsnn.experiment.runs import read_jsonl
from simulations import table5_6
from simulations.table5_6_report import combine

TINY = ["--attacks", "idlg", "--iterations", "2", "--pairs-per-class", "2"]


def test_nmnist_victims_are_test_recordings_scored_by_the_judge(tmp_path):
    make_nmnist(tmp_path / "data", train_labels=tuple(range(10)) * 2, test_labels=(7, 2, 1, 0), events=150)
    out = tmp_path / "results" / "nmnist"
    table5_6.main(["--dataset", "nmnist", "--data-dir", str(tmp_path / "data"), "--out", str(out), "--samples", "2",
                   "--algorithms", "post", "--timesteps", "3", "--cache-dir", str(tmp_path / "judges"), *TINY])
    records = read_jsonl(out / "records.jsonl")
    assert len(records) == 2 * 6  # post: 2 victims x 6 tau (Algorithm 2 on real data: the DVS test)
    assert {r["split"] for r in records} == {"test"} and {r["source"] for r in records} == {"nmnist"}
    assert all(r["judge_correct"] in (True, False) for r in records)
    meta = read_jsonl(out / "invocations.jsonl")[-1]
    assert 0 <= meta["judge_accuracy"] <= 1 and meta["judge_test_size"] == 4 and meta["frames"] == [3, 2, 34, 34]
    table6 = json.loads((out / "table6.json").read_text())
    assert table6["intra"]["pairs"] == 10 and table6["intra"]["mean_ci"][0] <= table6["intra"]["mean"]
    table5_6.main(["--dataset", "nmnist", "--data-dir", str(tmp_path / "data"), "--out", str(out), "--samples", "2",
                   "--algorithms", "post", "--timesteps", "3", "--cache-dir", str(tmp_path / "judges"), *TINY])
    assert len(read_jsonl(out / "records.jsonl")) == 12  # a rerun skips finished victims
    text = (out / "table5_6.md").read_text()
    assert "N-MNIST (real recordings)" in text and "held-out accuracy" in text and "(508.09)" in text


def test_dvs_cuts_carry_inferred_labels_and_have_no_judge(tmp_path):
    make_cuts(tmp_path / "data", labels=(0, 1, 2))
    out = tmp_path / "results" / "dvs-cuts"
    table5_6.main(["--dataset", "dvs-gesture", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                   "--samples", "2", "--in-samples", "1", "--max-victims", "2", "--timesteps", "1", *TINY])
    records = read_jsonl(out / "records.jsonl")
    assert len(records) == 2 * 6 + 1 * 6 and all(r["judge_correct"] is None for r in records)  # post 2, in 1 victim
    assert {r["label_source"] for r in records} == {"inferred (visual check)"} and records[0]["split"] == "train"
    assert json.loads((out / "table6.json").read_text())["intra"]["pairs"] == 0  # one cut per class
    combine(tmp_path / "results")
    text = (tmp_path / "results" / "table5_6.md").read_text()
    assert "labels INFERRED" in text and "No judge, so no ASR" in text
