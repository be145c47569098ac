"""``fedsnn-run``: a run the user controls, from input check to honest exit code.

* Every bad input is caught before anything starts, one line naming the key,
  the value and what is valid: ``--run-config`` read strictly
  (``overrides.parse_run_config``), every value checked (``RunConfig``), then
  what needs the data, the disk or the machine (``experiment.preflight``).
* The run goes to a SuperLink of its own (``superlink.OwnedSuperLink``:
  private FLWR_HOME, free loopback port, private Ray, stopped with the run),
  or with ``--superlink HOST:PORT`` / ``--connection NAME`` to an existing one.
* Ctrl-C or SIGTERM stops the run (``flwr stop``), marks the run folder
  ``interrupted.json``, keeps every finished round, writes ``report.md`` and
  exits 130 / 143.
* ``flwr run --stream`` exits 0 even when the run failed: the run's real
  status comes from ``flwr list``, and a run whose clients did not train
  (``experiment.health``) exits 1 with a line naming them.
* config.json records the git commit and dirty flag of the app checkout
  (Flower runs a copy without .git), passed as run-config ``source-commit``.

Usage: ``fedsnn-run [APP_DIR] [--run-config "k=v ..." | FILE.toml] [--federation-config "..."]
[--superlink HOST:PORT | --connection NAME]``
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fedsnn.errors import ConfigError, DataNotFoundError
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.health import training_failure
from fedsnn.experiment.preflight import preflight
from fedsnn.experiment.run_report import write_run_report
from fedsnn.experiment.runs import read_jsonl
from fedsnn.launch.overrides import parse_run_config, toml_overrides
from fedsnn.launch.superlink import OwnedSuperLink, Target, command
from fedsnn.provenance import code_version

DEFAULT_FEDERATION = "num-supernodes=2 client-resources-num-cpus=1"
EXIT_BAD_INPUT, EXIT_FAILED = 2, 1


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class Launch:
    """How one run ended: exit code, run id, SuperLink status, run folder."""

    code: int
    run_id: str | None = None
    status: str = ""
    run_dir: Path | None = None


def resolve_config(app: Path, run_config: list[str]) -> tuple[RunConfig, dict[str, Any]]:
    """Defaults from the app's pyproject.toml merged with the overrides, validated.

    Returns the config and the overrides to pass on, with paths made absolute
    (apps run in the SuperLink's folder) and ``source-commit`` set.
    """
    with open(app / "pyproject.toml", "rb") as f:
        defaults = tomllib.load(f)["tool"]["flwr"]["app"]["config"]
    overrides = parse_run_config(run_config)
    cfg = RunConfig.from_mapping({**defaults, **overrides})
    overrides["output-dir"] = str(Path(cfg.output_dir).expanduser().resolve())
    if cfg.data_dir:
        overrides["data-dir"] = str(Path(cfg.data_dir).expanduser().resolve())
    version = code_version(app)
    if not version.startswith("fedsnn-"):  # a git checkout: 'commit' or 'commit+dirty'
        overrides["source-commit"] = version
    return RunConfig.from_mapping({**defaults, **overrides}), overrides


def flower_run_status(run_id: str, target: Target) -> str:
    """'finished:completed', 'finished:failed', ... as the SuperLink records it."""
    out = subprocess.run([command("flwr"), "list", target.connection, "--run-id", run_id, "--format", "json"],
                         capture_output=True, text=True, env=target.env, cwd=target.home, timeout=120)
    try:
        runs = json.loads(out.stdout[out.stdout.index("{"):])["runs"]
        return str(runs[0]["status"])
    except (ValueError, KeyError, IndexError):
        return f"unknown (flwr list said: {out.stdout.strip() or out.stderr.strip()})"


def stop_run(run_id: str, target: Target) -> None:
    subprocess.run([command("flwr"), "stop", run_id, target.connection], capture_output=True, text=True,
                   env=target.env, cwd=target.home, timeout=60)


def mark_interrupted(run_dir: Path, signum: int, cfg: RunConfig, run_id: str | None) -> None:
    """interrupted.json beside the records: which signal, when, how far the run got."""
    finished = [r["round"] for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("round", 0) >= 1]
    (run_dir / "interrupted.json").write_text(json.dumps({
        "signal": signal.Signals(signum).name, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run-id": run_id, "num-rounds": cfg.num_rounds, "rounds-finished": max(finished, default=0),
    }, indent=2) + "\n")


def launch(app: Path, run_config: list[str], federation_config: str | None = None,
           superlink: str | None = None, connection: str | None = None, prefix: str = "") -> Launch:
    """Check the input, submit the run, stream its log, and exit with its real outcome.

    ``prefix`` starts every line this run prints (e.g. the fleet's name in a comparison).
    """
    try:
        cfg, overrides = resolve_config(app, run_config)
        preflight(cfg)
    except (ConfigError, DataNotFoundError) as err:
        print(f"{prefix}fedsnn-run: {err}", file=sys.stderr)
        return Launch(EXIT_BAD_INPUT)
    target = Target(superlink, connection) if (superlink or connection) else OwnedSuperLink()
    if target.owned:
        federation_config = federation_config or DEFAULT_FEDERATION
        print(f"{prefix}fedsnn-run: {target.ray_note}", flush=True)
    cmd = [command("flwr"), "run", str(app), target.connection, "--stream", "--run-config", toml_overrides(overrides)]
    if federation_config:
        cmd += ["--federation-config", federation_config]
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    log = RunLog(prefix)
    try:
        with target:
            print(f"{prefix}fedsnn-run: submitting to {target.describe}", flush=True)
            try:
                log.follow(cmd, target)
                if log.run_id is None:
                    print(f"{prefix}fedsnn-run: flwr run did not start a run", file=sys.stderr)
                    return Launch(EXIT_FAILED)
                status = flower_run_status(log.run_id, target)
            except Interrupted as stop:
                for s in previous:  # a second Ctrl-C must not cut the clean-up short
                    signal.signal(s, signal.SIG_IGN)
                return interrupted(stop.signum, cfg, target, log, prefix)
            target.close(keep_log_in=log.run_dir)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return finished(log, status, overrides["output-dir"], prefix)


class RunLog:
    """``flwr run --stream``, echoed line by line; remembers the run id and folder the log names."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.run_id: str | None = None
        self.run_dir: Path | None = None

    def follow(self, cmd: list[str], target: Target) -> None:
        with subprocess.Popen(cmd, cwd=target.home, env=target.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True) as proc:
            try:
                for line in proc.stdout:  # type: ignore[union-attr]
                    sys.stdout.write(self.prefix + line)
                    sys.stdout.flush()
                    if m := re.search(r"Successfully started run (\d+)", line):
                        self.run_id = m.group(1)
                    if m := re.search(r"fedsnn run folder: (\S+)", line):
                        self.run_dir = Path(m.group(1))
            finally:
                if proc.poll() is None:
                    proc.terminate()


def interrupted(signum: int, cfg: RunConfig, target: Target, log: RunLog, prefix: str = "") -> Launch:
    """Stop the run, then the SuperLink if ours; mark the folder and write its report."""
    run_id, run_dir = log.run_id, log.run_dir
    name = signal.Signals(signum).name
    print(f"\n{prefix}fedsnn-run: {name}: stopping run {run_id or '(not started yet)'}", file=sys.stderr, flush=True)
    if run_id is not None:
        stop_run(run_id, target)
    target.close(keep_log_in=run_dir)
    if run_dir is not None and run_dir.is_dir():
        mark_interrupted(run_dir, signum, cfg, run_id)
        write_run_report(run_dir)
        print(f"{prefix}fedsnn-run: run {run_id} interrupted; finished rounds kept in {run_dir} (report.md)", file=sys.stderr)
    return Launch(128 + signum, run_id, "interrupted", run_dir)


def finished(log: RunLog, status: str, output_dir: str, prefix: str = "") -> Launch:
    run_id, run_dir = log.run_id, log.run_dir
    verdict = training_failure(read_jsonl(run_dir / "metrics.jsonl")) if run_dir else None
    if run_dir is not None and run_dir.is_dir() and not (run_dir / "report.md").exists():
        write_run_report(run_dir)
    ok = status == "finished:completed" and verdict is None
    line = f"{prefix}fedsnn-run: run {run_id} {status}" + (f": {verdict}" if verdict else "")
    print(f"{line}; results in {run_dir or output_dir}", file=sys.stdout if ok else sys.stderr)
    return Launch(0 if ok else EXIT_FAILED, run_id, status, run_dir)


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedsnn-run", description=__doc__.split("\n\n")[0])
    parser.add_argument("app", nargs="?", default=".", help="app folder holding pyproject.toml (default: .)")
    parser.add_argument("--run-config", "-c", action="append", default=[],
                        help="overrides, e.g. \"model='snn-lenet'\", or a TOML file")
    parser.add_argument("--federation-config", default=None,
                        help=f"simulation settings (default for the own SuperLink: '{DEFAULT_FEDERATION}')")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--superlink", metavar="HOST:PORT", help="submit to this existing SuperLink (insecure)")
    where.add_argument("--connection", metavar="NAME", help="submit through a connection of $FLWR_HOME/config.toml")
    args = parser.parse_args(argv)
    return launch(Path(args.app).resolve(), args.run_config, args.federation_config, args.superlink,
                  args.connection).code


if __name__ == "__main__":
    sys.exit(main())
