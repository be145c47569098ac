"""Real Flower runs through ``fedsnn-run`` (each 20-60 s on an idle 2-core machine):

* the simulation on fedsnn-run's own SuperLink with a private Ray: records, strict JSON,
  report.md, git provenance, nothing left running;
* a run whose clients all fail exits non-zero with a line naming them;
* Ctrl-C on a run that joined a ``ray start`` cluster (RAY_ADDRESS): stopped, marked, kept;
* the deployment runtime: a SuperLink and two SuperNodes as separate processes on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_run_control import assert_strict_json_folder

from fedsnn.experiment.reporting import compare
from fedsnn.experiment.runs import read_jsonl
from fedsnn.launch import main as launch
from fedsnn.launch.superlink import base_env, command, descendants, free_port, stop_pids

ROOT = Path(__file__).resolve().parents[1]
FAST = "eval-samples=200 local-steps=10 judge='none' attacks='none' gamin-rounds='none'"


def loopback_ports_available() -> bool:
    try:
        free_port()
        return True
    except OSError:
        return False


pytestmark = [pytest.mark.flower,
              pytest.mark.skipif(not loopback_ports_available(), reason="no free TCP port on 127.0.0.1")]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def only_run(out: Path) -> Path:
    (run_dir,) = list(out.iterdir())
    return run_dir


class Processes:
    """Processes a test starts, each stopped by PID (with what it started) at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.started):
            family = descendants(proc.pid)
            stop_pids([proc.pid])
            stop_pids(family)
            proc.wait(timeout=10)


@pytest.fixture()
def processes():
    procs = Processes()
    yield procs
    procs.stop()


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.5)


def test_own_superlink_private_ray_records_and_report(tmp_path, capsys):
    out = tmp_path / "runs"
    settings = (f"num-rounds=2 eval-samples=200 local-steps=10 name='smoke' output-dir='{out}' "
                "attacks='idlg' attack-samples=2 attack-iterations=5 attack-time-budget=10.0 judge='none' "
                "gamin-rounds='last' gamin-budget=256 gamin-classes='0,1'")
    assert launch([str(ROOT), "--run-config", settings]) == 0
    log = capsys.readouterr().out
    assert "private Ray on 127.0.0.1" in log and "own SuperLink on 127.0.0.1:" in log
    port = int(log.split("own SuperLink on 127.0.0.1:")[1].split()[0])
    assert not port_open(port), "the run's SuperLink must stop with the run"
    run_dir = only_run(out)
    assert run_dir.name.endswith("-smoke")
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in records] == [0, 1, 2] and all(r["clients-ok"] == 2 for r in records[1:])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run-config"]["num-rounds"] == 2 and config["versions"]["flwr"].startswith("1.41")
    assert config["ray"]["mode"].startswith("private")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if commit:  # a git checkout (CI and development)
        assert config["git-commit"] == commit and isinstance(config["git-dirty"], bool)
    leakage = read_jsonl(run_dir / "leakage.jsonl")
    assert sorted((line["round"], line["partition"]) for line in leakage) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(line["status"] in ("converged", "budget") and len(line["samples"]) == 2 for line in leakage)
    assert [line["class"] for line in read_jsonl(run_dir / "gamin.jsonl")] == [0, 1]
    assert (run_dir / "global_model.pt").exists() and (run_dir / "superlink.log").exists()
    assert "**Finished**: 2 rounds." in (run_dir / "report.md").read_text()
    assert assert_strict_json_folder(run_dir) >= 5
    report = compare({"lenet": run_dir}, tmp_path / "report")
    assert "| lenet | 2 | idlg |" in report.read_text() and (tmp_path / "report" / "leakage.png").exists()


def test_a_run_whose_clients_all_fail_exits_non_zero_naming_them(tmp_path, capsys):
    """lr=1e308: every client fails; Flower would report the run completed and exit 0."""
    out = tmp_path / "runs"
    assert launch([str(ROOT), "--run-config", f"num-rounds=2 lr=1e308 output-dir='{out}' {FAST}"]) == 1
    err = capsys.readouterr().err
    assert "finished:failed: no client trained in round 1 (partitions 0, 1 failed; first reason:" in err
    records = read_jsonl(only_run(out) / "metrics.jsonl")
    assert records[-1]["round"] == 1 and len(records[-1]["clients-failed"]) == 2


RAY_HEAD = """
import sys, time, ray
ray.init(num_cpus=2, include_dashboard=False, _temp_dir=sys.argv[1])
print("RAY HEAD", ray.get_runtime_context().gcs_address, flush=True)
while True:
    time.sleep(60)
"""


def start_ray_head(processes: Processes, env: dict[str, str], folder: Path) -> str:
    """A Ray head on loopback, in a process of this test (stopped by PID), with its own temp dir
    so no host-wide cluster file is touched; returns its address. (``ray start --head`` missed
    Ray's fixed 30 s raylet start-up window at load 23 here; ``ray.init`` in a process did not.)"""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths
    log = folder / "ray-head.log"
    head = processes.start([sys.executable, "-c", RAY_HEAD, str(ray_tmp)], {**env, "RAY_ADDRESS": "local"}, folder, log)
    wait_for(lambda: head.poll() is not None or "RAY HEAD" in log.read_text(), 300, "the Ray head did not start")
    assert head.poll() is None, log.read_text()[-1000:]
    return log.read_text().split("RAY HEAD ")[1].split()[0]


@pytest.mark.ray_cluster
def test_ctrl_c_stops_a_run_on_a_ray_cluster_and_keeps_its_rounds(tmp_path, processes):
    """RAY_ADDRESS: the simulation joins an existing Ray cluster (started and stopped here by PID,
    bound to loopback, its own temp dir so no host-wide cluster file is touched); SIGINT then
    stops the run: exit 130, interrupted.json, finished rounds kept, no further rounds."""
    env = {**base_env(dict(os.environ)), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    address = start_ray_head(processes, env, tmp_path)
    assert address.startswith("127.0.0.1:")
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "fedsnn.launch", str(ROOT), "--run-config",
           f"num-rounds=40 output-dir='{out}' name='ctrl-c' eval-samples=200 judge='none' attacks='none' gamin-rounds='none'"]
    log = tmp_path / "fedsnn-run.log"
    run = processes.start(cmd, {**env, "RAY_ADDRESS": address}, ROOT, log)
    wait_for(lambda: out.exists() and any(out.iterdir())
             and len(read_jsonl(only_run(out) / "metrics.jsonl")) >= 2, 400, "round 1 never finished")
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=120) == 128 + signal.SIGINT
    text = log.read_text()
    assert f"joins the Ray cluster at RAY_ADDRESS={address}" in text and "interrupted" in text
    run_dir = only_run(out)
    marker = json.loads((run_dir / "interrupted.json").read_text())
    assert marker["signal"] == "SIGINT" and 1 <= marker["rounds-finished"] < 40
    config = json.loads((run_dir / "config.json").read_text())
    assert config["ray"] == {"address": address, "mode": "cluster"}
    kept = len(read_jsonl(run_dir / "metrics.jsonl"))
    time.sleep(5)
    assert len(read_jsonl(run_dir / "metrics.jsonl")) == kept == marker["rounds-finished"] + 1
    assert not (run_dir / "global_model.pt").exists()
    assert "**Interrupted** by SIGINT" in (run_dir / "report.md").read_text()
    assert_strict_json_folder(run_dir)


def test_deployment_superlink_and_two_supernodes_on_loopback(tmp_path, processes):
    """README "Several machines", on one machine: flower-superlink, two flower-supernode, fedsnn-run --superlink."""
    link, nodes = free_port(), [free_port(), free_port()]
    env = base_env(dict(os.environ))
    home = Path(tempfile.mkdtemp(prefix="fedsnn-deploy-"))
    processes.start([command("flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port", str(link),
                     "--database", str(home / "state.db")], {**env, "FLWR_HOME": str(home / "link")}, home,
                    tmp_path / "superlink.log")
    wait_for(lambda: port_open(link), 120, "flower-superlink did not open its port")
    for i, port in enumerate(nodes):
        processes.start([command("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                         "--node-config", f"partition-id={i} num-partitions=2", "--port", str(port)],
                        {**env, "FLWR_HOME": str(home / f"node{i}")}, home, tmp_path / f"supernode{i}.log")
    out = tmp_path / "runs"
    code = launch([str(ROOT), "--superlink", f"127.0.0.1:{link}", "--run-config",
                   f"num-rounds=2 output-dir='{out}' name='deployed' {FAST}"])
    assert code == 0, (tmp_path / "superlink.log").read_text()[-2000:]
    run_dir = only_run(out)
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in records] == [0, 1, 2] and all(r["clients-ok"] == 2 for r in records[1:])
    assert json.loads((run_dir / "partitions.json").read_text())["num-partitions"] == 2
    assert (run_dir / "global_model.pt").exists() and (run_dir / "report.md").exists()
    assert port_open(link), "a SuperLink the user started is left running"
