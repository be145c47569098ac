"""A run the user controls, without Flower's runtime: strict input, honest verdicts, strict JSON,
report.md, private Ray settings, same seed -> same accuracies (issue #14)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from flwr.app import Context, RecordDict
from flower_grid import InMemoryGrid

from clients.client_app import app as client_app
from fedsnn.errors import ConfigError, RunConfigError, TrainingFailed
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import dataset_for, model_spec
from fedsnn.experiment.health import training_failure
from fedsnn.experiment.preflight import check_memory, check_output_dir, preflight
from fedsnn.experiment.run_report import write_run_report
from fedsnn.experiment.runs import RecordLog, read_jsonl, write_json
from fedsnn.launch import main as launch
from fedsnn.launch.overrides import toml_overrides, parse_run_config
from fedsnn.launch.superlink import ray_env
from server.server_app import main as server_main

ROOT = Path(__file__).resolve().parents[1]


def strict_load(text: str):
    """json.loads that refuses NaN and Infinity (not JSON)."""
    def refuse(constant: str):
        raise ValueError(f"non-JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def assert_strict_json_folder(run_dir: Path) -> int:
    """Every .json and .jsonl file of a run folder parses strictly; returns how many were read."""
    files = sorted(run_dir.rglob("*.json")) + sorted(run_dir.rglob("*.jsonl"))
    for path in files:
        if path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                strict_load(line)
        else:
            strict_load(path.read_text())
    return len(files)


def run_inmemory(run_config: dict, nodes: int = 2) -> Path:
    grid = InMemoryGrid(client_app, nodes, run_config)
    try:
        server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config))
    finally:
        (run_dir,) = list(Path(run_config["output-dir"]).iterdir())
    return run_dir


# ---- 4. every bad input caught before work starts, one line naming key, value and what is valid

@pytest.mark.parametrize("items,key,fragment", [
    (["lr="], "lr", "a value after '='"),
    (["lr=0.1", "lr=0.2"], "lr", "the key once"),
    (["lr=0.1 lr=0.2"], "lr", "the key once"),
    (["/no/such/file.toml"], "--run-config", "file not found"),
    (["name=x/y"], "name", "quoted string"),
    (["seed"], "seed", "key=value pairs"),
])
def test_run_config_strings_are_read_strictly(items, key, fragment):
    with pytest.raises(RunConfigError) as err:
        parse_run_config(items)
    message = str(err.value)
    assert f"'{key}'" in message and fragment in message and "\n" not in message


def test_toml_file_and_pairs_merge_and_pass_on_unchanged(tmp_path):
    toml = tmp_path / "x.toml"
    toml.write_text("num-rounds = 3\nname = 'a b'\n")
    merged = parse_run_config([str(toml), "lr=0.5 download=true"])
    assert merged == {"num-rounds": 3, "name": "a b", "lr": 0.5, "download": True}
    assert parse_run_config([toml_overrides(merged)]) == merged
    with pytest.raises(RunConfigError, match="'num-rounds'.*once"):
        parse_run_config([str(toml), "num-rounds=4"])


@pytest.mark.parametrize("key,value,fragment", [
    ("lr", math.inf, "a finite number"),
    ("alpha", math.inf, "a finite number"),
    ("lr", math.nan, "a finite number"),
    ("attack-rounds", "7", "round 7 never runs"),
    ("attack-rounds", "1,,3", "a list like '1,3,5'"),
    ("gamin-rounds", "2,9", "round 9 never runs"),
    ("attack-rounds", "every:0", "every:K"),
    ("name", "x/y", "a single folder name"),
    ("name", "..", "a single folder name"),
    ("name", "", "a single folder name"),
    ("gamin-classes", "1,,2", "distinct class indices"),
])
def test_bad_values_stop_with_key_value_and_what_is_valid(key, value, fragment):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_mapping({key: value})
    message = str(err.value)
    assert f"'{key}'" in message and repr(value) in message and fragment in message


def test_gamin_classes_beyond_the_dataset_are_caught_before_training(tmp_path):
    cfg = RunConfig(gamin_classes="3,42", output_dir=str(tmp_path))
    with pytest.raises(RunConfigError, match=r"'gamin-classes': got '3,42'; expected .*0\.\.9 \('mnist' has 10"):
        preflight(cfg)


def test_an_output_folder_that_cannot_be_created_is_named(tmp_path):
    with pytest.raises(RunConfigError, match=r"'output-dir': got '/dev/null/x'; expected a folder that can be created"):
        check_output_dir("/dev/null/x")
    check_output_dir(str(tmp_path / "new" / "runs"))
    assert (tmp_path / "new" / "runs").is_dir()


def test_snn_settings_beyond_the_machines_memory_are_caught():
    cfg = RunConfig(model="snn-lenet", timesteps=100000)
    spec = model_spec(cfg, dataset_for(cfg).test)
    with pytest.raises(RunConfigError, match=r"'timesteps': got 100000; expected .*GiB needed"):
        check_memory(cfg, spec)
    small = RunConfig(model="snn-lenet")
    check_memory(small, model_spec(small, dataset_for(small).test))  # the default fits in 1 GiB
    check_memory(small, model_spec(small, dataset_for(small).test), available=2**30)


@pytest.mark.parametrize("override,fragment", [
    ("lr=", "'lr': got ''"),
    ("lr=inf", "'lr': got inf"),
    ("alpha=inf partitioning='dirichlet'", "'alpha': got inf"),
    ("gamin-classes='42'", "'gamin-classes': got '42'"),
    ("attack-rounds='7'", "'attack-rounds': got '7'"),
    ("attack-rounds='1,,3'", "'attack-rounds': got '1,,3'"),
    ("name='x/y'", "'name': got 'x/y'"),
    ("output-dir='/dev/null/x'", "'output-dir': got '/dev/null/x'"),
    ("model='snn-lenet' timesteps=100000", "'timesteps': got 100000"),
])
def test_launcher_stops_each_bad_input_with_one_line(override, fragment, capsys):
    assert launch([str(ROOT), "--run-config", override]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_launcher_stops_duplicate_keys_and_missing_files(capsys, tmp_path):
    assert launch([str(ROOT), "--run-config", "lr=0.1", "--run-config", "lr=0.2"]) == 2
    assert "'lr': got 0.2; expected the key once" in capsys.readouterr().err
    assert launch([str(ROOT), "--run-config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


# ---- 3. honest status, strict JSON

def test_a_run_in_which_no_client_trained_fails_naming_clients_and_reason(tiny_run_config):
    cfg = {**tiny_run_config, "lr": 1e308}
    with pytest.raises(TrainingFailed, match=r"no client trained in round 1 \(partitions 0, 1 failed; first reason: "
                                             r"RuntimeError: value cannot be converted"):
        run_inmemory(cfg)
    (run_dir,) = list(Path(cfg["output-dir"]).iterdir())
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [(r["round"], r["clients-ok"], len(r["clients-failed"])) for r in records] == [(0, 0, 0), (1, 0, 2)]
    assert records[1]["test-accuracy"] is None and (run_dir / "report.md").exists()
    assert "Training failed" in (run_dir / "report.md").read_text()
    assert assert_strict_json_folder(run_dir) >= 3


def test_a_client_failing_in_every_round_is_named():
    rounds = [{"round": r, "clients-ok": 1, "sampled-partitions": [0, 1],
               "clients-failed": [{"partition": 1, "reason": "Traceback...\nValueError: boom\n"}]} for r in (1, 2)]
    assert training_failure(rounds) == "partition 1 failed in every round they were sampled in; first reason: ValueError: boom"
    rounds[1]["clients-failed"] = []
    assert training_failure(rounds) is None


def test_records_hold_null_with_a_reason_instead_of_nan(tmp_path):
    log = RecordLog(tmp_path / "m.jsonl")
    log.append({"round": 1, "test-loss": math.nan, "samples": [{"psnr": math.inf}]})
    write_json(tmp_path / "c.json", {"m_global": math.nan})
    (line,) = [strict_load(t) for t in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert line["test-loss"] is None and line["samples"][0]["psnr"] is None
    assert line["null-reasons"] == {"test-loss": "nan", "samples[0].psnr": "inf"}
    assert strict_load((tmp_path / "c.json").read_text())["null-reasons"] == {"m_global": "nan"}


# ---- 2. private Ray

def test_without_ray_address_the_simulation_gets_a_private_loopback_ray():
    env, note = ray_env({})
    assert env == {"RAY_ADDRESS": "local", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"} and "private" in note
    env, note = ray_env({"RAY_ADDRESS": "127.0.0.1:6380"})
    assert env == {"RAY_ADDRESS": "127.0.0.1:6380"} and "joins the Ray cluster at RAY_ADDRESS=127.0.0.1:6380" in note


# ---- 5/6. reproducibility and report.md

@pytest.mark.parametrize("model", ["lenet", "snn-lenet"])
def test_the_same_seed_gives_the_same_accuracies(tiny_run_config, tmp_path, model):
    accuracies = []
    for attempt in range(2):
        cfg = {**tiny_run_config, "model": model, "timesteps": 4, "output-dir": str(tmp_path / f"a{attempt}")}
        run_dir = run_inmemory(cfg)
        accuracies.append([(r["test-accuracy"], r["train-loss"]) for r in read_jsonl(run_dir / "metrics.jsonl")])
    assert accuracies[0] == accuracies[1]


def test_report_shows_rounds_leakage_grids_gamin_and_config(tiny_run_config):
    cfg = {**tiny_run_config, "attacks": "idlg", "attack-samples": 2, "attack-iterations": 3, "attack-rounds": "2",
           "gamin-rounds": "last", "gamin-budget": 128, "gamin-classes": "0,1", "source-commit": "abc123+dirty"}
    run_dir = run_inmemory(cfg)
    report = (run_dir / "report.md").read_text()
    assert "**Finished**: 2 rounds." in report
    assert "| 2 | " in report.split("## Leakage")[0]  # accuracy row of round 2
    assert "| 2 | idlg | lenet | 4 |" in report  # 2 clients x 2 samples
    assert "![round 2 idlg](report/r002-idlg.png)" in report and (run_dir / "report" / "r002-idlg.png").exists()
    assert "![GAMIN r002-classes](gamin/r002-classes.png)" in report
    assert "| `lr` | `0.25` |" in report and '| git-commit | `"abc123"` |' in report
    config = strict_load((run_dir / "config.json").read_text())
    assert config["git-commit"] == "abc123" and config["git-dirty"] is True
    assert assert_strict_json_folder(run_dir) >= 5


def test_report_renders_controls_and_gains_where_the_evaluator_records_them(tmp_path):
    line = {"round": 1, "attack": "idlg", "model": "lenet", "status": "converged", "seconds": 1.0,
            "samples": [{"psnr": 20.0, "ssim": 0.5, "success": False, "judge_correct": None, "label_correct": True}],
            "controls": {"initial-dummy": [{"psnr": 6.0, "ssim": 0.01}], "auxiliary": {"samples": [{"psnr": 9.0, "ssim": 0.2}]}},
            "gains-over-label-only": [{"psnr": 14.0, "ssim": 0.49}]}
    RecordLog(tmp_path / "leakage.jsonl").append(line)
    report = write_run_report(tmp_path).read_text()
    assert "auxiliary: PSNR 9, SSIM 0.2; initial-dummy: PSNR 6, SSIM 0.01 | psnr 14, ssim 0.49 |" in report
    assert "**Incomplete**" in report and "config.json is missing" in report


def test_failed_clients_are_named_by_partition_whatever_the_reply_order():
    records = [{"round": 1, "clients-ok": 0,
                "clients-failed": [{"partition": 1, "reason": "second"}, {"partition": 0, "reason": "first"}]}]
    assert training_failure(records) == "no client trained in round 1 (partitions 0, 1 failed; first reason: first)"
