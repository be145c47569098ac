"""``fedsnn-run``: ``flwr run`` that checks its input first and tells the truth at the end.

Why a wrapper around ``flwr run . --stream``:

* bad run-config values are reported here, at once, with the key, the value
  and the valid choices, before a SuperLink or a client starts;
* the local SuperLink must not install the app's dependencies at run time
  (gigabytes, and impossible offline): the wrapper sets
  FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 for the SuperLink it starts,
  and starts it from a neutral folder so apps import the shipped code;
* ServerApp and ClientApps run in the SuperLink's working directory, so
  relative ``output-dir``/``data-dir`` are made absolute here;
* ``flwr run --stream`` exits 0 even when the run failed: the wrapper reads the
  run's real status with ``flwr list`` and exits non-zero unless it completed.

Usage: ``fedsnn-run [APP_DIR] [--run-config "k=v ..."] [--federation-config "..."]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsnn.experiment.config import RunConfig
from fedsnn.errors import ConfigError, DataNotFoundError
from fedsnn.experiment.federation import dataset_for

DEFAULT_FEDERATION = "num-supernodes=2 client-resources-num-cpus=1"


def resolve_config(app: Path, run_config: list[str]) -> tuple[RunConfig, dict[str, Any]]:
    """Defaults from the app's pyproject.toml merged with overrides, validated.

    Returns the config and the overrides to pass on, with paths made absolute.
    """
    from flwr.common.config import parse_config_args

    with open(app / "pyproject.toml", "rb") as f:
        defaults = tomllib.load(f)["tool"]["flwr"]["app"]["config"]
    overrides = parse_config_args(run_config or None)
    cfg = RunConfig.from_mapping({**defaults, **overrides})
    overrides["output-dir"] = str(Path(cfg.output_dir).expanduser().resolve())
    if cfg.data_dir:
        overrides["data-dir"] = str(Path(cfg.data_dir).expanduser().resolve())
    return RunConfig.from_mapping({**defaults, **overrides}), overrides


def toml_overrides(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v) if not isinstance(v, bool) else str(v).lower()}" for k, v in overrides.items())


def flower_run_status(run_id: str, env: dict[str, str], cwd: Path) -> str:
    """'finished:completed', 'finished:failed', ... as the SuperLink records it."""
    out = subprocess.run([_flwr(),  "list", "--run-id", run_id, "--format", "json"], capture_output=True,
                         text=True, env=env, cwd=cwd, timeout=60)
    try:
        runs = json.loads(out.stdout[out.stdout.index("{"):])["runs"]
        return str(runs[0]["status"])
    except (ValueError, KeyError, IndexError):
        return f"unknown (flwr list said: {out.stdout.strip() or out.stderr.strip()})"


def _flwr() -> str:
    beside = Path(sys.executable).parent / "flwr"
    return str(beside) if beside.exists() else "flwr"


@dataclass(frozen=True)
class Launch:
    """How one ``flwr run`` ended: exit code, run id, SuperLink status, run folder."""

    code: int
    run_id: str | None = None
    status: str = ""
    run_dir: Path | None = None


def launch(app: Path, run_config: list[str], federation_config: str = DEFAULT_FEDERATION) -> Launch:
    """Validate, run ``flwr run --stream`` (streaming its log), and read the real status."""
    try:
        cfg, overrides = resolve_config(app, run_config)
        dataset_for(cfg)
    except (ConfigError, DataNotFoundError) as err:
        print(f"fedsnn-run: {err}", file=sys.stderr)
        return Launch(2)

    env = {**os.environ, "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}
    # flwr, flower-superlink and flwr-simulation live beside this interpreter
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    neutral = Path(env.get("FLWR_HOME", Path.home() / ".flwr"))
    neutral.mkdir(parents=True, exist_ok=True)
    cmd = [_flwr(), "run", str(app), "--stream", "--run-config", toml_overrides(overrides),
           "--federation-config", federation_config]
    run_id, run_dir = None, None
    with subprocess.Popen(cmd, cwd=neutral, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:  # type: ignore[union-attr]
            sys.stdout.write(line)
            if m := re.search(r"Successfully started run (\d+)", line):
                run_id = m.group(1)
            if m := re.search(r"fedsnn run folder: (\S+)", line):
                run_dir = Path(m.group(1))
    if run_id is None:
        print("fedsnn-run: flwr run did not start a run", file=sys.stderr)
        return Launch(1)
    status = flower_run_status(run_id, env, neutral)
    print(f"fedsnn-run: run {run_id} {status}; results in {run_dir or overrides['output-dir']}")
    return Launch(0 if status == "finished:completed" else 1, run_id, status, run_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedsnn-run", description=__doc__.split("\n\n")[0])
    parser.add_argument("app", nargs="?", default=".", help="app folder holding pyproject.toml (default: .)")
    parser.add_argument("--run-config", "-c", action="append", default=[], help="overrides, e.g. \"model='snn-lenet'\"")
    parser.add_argument("--federation-config", default=DEFAULT_FEDERATION, help=f"default: '{DEFAULT_FEDERATION}'")
    args = parser.parse_args(argv)
    return launch(Path(args.app).resolve(), args.run_config, args.federation_config).code


if __name__ == "__main__":
    sys.exit(main())
