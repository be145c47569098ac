"""GAMIN from the ServerApp: against the aggregated model, through queries only."""

from __future__ import annotations

from pathlib import Path


from flwr.app import Context, RecordDict
from flower_grid import InMemoryGrid

from clients.client_app import app as client_app
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import dataset_for, model_spec
from fedsnn.experiment.runs import read_jsonl
from fedsnn.task.models import build_model
from server.black_box import invert_global_model
from server.server_app import main as server_main


def test_gamin_runs_after_the_last_round_and_records_every_class(tmp_path, tiny_run_config):
    cfg = {**tiny_run_config, "gamin-rounds": "last", "gamin-budget": 256, "gamin-classes": "1,7",
           "output-dir": str(tmp_path / "g")}
    server_main(InMemoryGrid(client_app, 2, cfg), Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=cfg))
    (run_dir,) = list(Path(cfg["output-dir"]).iterdir())
    lines = read_jsonl(run_dir / "gamin.jsonl")
    assert [(line["round"], line["class"]) for line in lines] == [(2, 1), (2, 7)]
    for line in lines:
        assert line["status"] == "ok" and line["queries"] <= 256
        assert 0 <= line["fidelity"] <= 1 and 0 <= line["target_accuracy"] <= 100
    assert (run_dir / "gamin" / "r002-classes.png").stat().st_size > 1000


def test_a_failing_gamin_is_recorded_not_raised(tmp_path, tiny_run_config, monkeypatch):
    import server.black_box as black_box

    def broken(*args, **kwargs):
        raise RuntimeError("generator exploded")

    monkeypatch.setattr(black_box, "run_gamin", broken)
    cfg = {**tiny_run_config, "gamin-rounds": "1", "gamin-budget": 256, "output-dir": str(tmp_path / "f")}
    server_main(InMemoryGrid(client_app, 2, cfg), Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=cfg))
    (run_dir,) = list(Path(cfg["output-dir"]).iterdir())
    (line,) = read_jsonl(run_dir / "gamin.jsonl")
    assert line["status"] == "failed" and "generator exploded" in line["reason"]
    assert [r["round"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [0, 1, 2]


def test_gamin_line_holds_the_leakage_checks_beside_their_references(tmp_path, tiny_run_config):
    cfg = {**tiny_run_config, "gamin-rounds": "last", "gamin-budget": 256, "gamin-classes": "3",
           "output-dir": str(tmp_path / "g")}
    server_main(InMemoryGrid(client_app, 2, cfg), Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=cfg))
    (run_dir,) = list(Path(cfg["output-dir"]).iterdir())
    (line,) = read_jsonl(run_dir / "gamin.jsonl")
    assert line["judge_recognised"] is None and line["judge"] == "none"  # judge='none': not measured, and said so
    assert line["closer_ssim"]["n"] == 64 and 0 <= line["closer_ssim"]["low"] <= line["closer_ssim"]["high"] <= 1
    assert set(line["references"]) == {"random-probe", "class-mean", "held-out"}
    assert line["references"]["held-out"]["closer_ssim"]["rate"] > 0.5


def test_non_finite_global_model_is_an_invalid_target(tmp_path):
    cfg = RunConfig.from_mapping({"gamin-budget": 256, "judge": "none"})
    state = build_model(model_spec(cfg, dataset_for(cfg).test), seed=0).state_dict()
    state = {k: v.clone() for k, v in state.items()}
    next(iter(state.values())).fill_(float("nan"))
    (line,) = invert_global_model(cfg, state, 3, tmp_path)
    assert line["status"] == "invalid-target" and "non-finite weights" in line["reason"]
    assert read_jsonl(tmp_path / "gamin.jsonl") == [line] and not (tmp_path / "gamin").exists()
