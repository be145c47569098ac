"""The SNN-settings ablation runs end to end on the shipped digits and resumes."""

from __future__ import annotations

from fedsnn.experiment.runs import read_jsonl
from simulations.snn_settings import main


def test_ablation_writes_table_and_grid_and_skips_finished_work(tmp_path):
    args = ["--samples", "1", "--time-budget", "1", "--only", "T=1", "--out", str(tmp_path)]
    main(args)
    (record,) = read_jsonl(tmp_path / "records.jsonl")
    assert record["setting"] == "T=1" and 0 <= record["psnr"] <= 100 and record["judge_correct"] in (True, False)
    assert "| T=1 | 1 |" in (tmp_path / "snn_settings.md").read_text()
    assert (tmp_path / "grid.png").stat().st_size > 1000
    main(args)  # resumable: nothing new to do
    assert len(read_jsonl(tmp_path / "records.jsonl")) == 1
