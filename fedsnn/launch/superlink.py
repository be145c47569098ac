"""Where a run goes: a SuperLink of the run's own, or one the user names.

By default ``fedsnn-run`` starts its own simulation SuperLink and stops it
when the run ends (Flower's shared local SuperLink outlives
runs on a fixed port with ~/.flwr and keeps the environment of whoever started
it first):

* its own FLWR_HOME in a temporary folder, which is also the neutral working
  directory (apps import the installed code, not an app folder's);
* a free port on 127.0.0.1;
* the environment it needs: FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 (offline),
  this interpreter's bin on PATH (flower-superexec, flwr-simulation), and a
  private Ray: RAY_ADDRESS=local starts a fresh Ray (never an unrelated
  cluster, never a stale ray_current_cluster file) and
  RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 binds every Ray process to 127.0.0.1
  (measured: GCS, raylet and workers on loopback). An exported RAY_ADDRESS is
  kept: the simulation then joins that cluster.

``--superlink HOST:PORT`` (insecure) or ``--connection NAME`` (a connection in
the user's $FLWR_HOME/config.toml) submit to an existing SuperLink instead.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CONNECTION = "fedsnn"  # the connection name written into the private FLWR_HOME
STARTUP_TIMEOUT_S = 90.0  # a loaded 2-core machine needs ~10-30 s
PR_SET_PDEATHSIG = 1


def bin_dir() -> Path:
    return Path(sys.executable).parent


def command(name: str) -> str:
    """A Flower executable beside this interpreter (flwr, flower-superlink, ...)."""
    beside = bin_dir() / name
    return str(beside) if beside.exists() else name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(environ: dict[str, str]) -> dict[str, str]:
    """What every Flower process of a run needs, whoever owns the SuperLink."""
    return {**environ, "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "FLWR_DISABLE_UPDATE_CHECK": "1",
            "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
            "PATH": os.pathsep.join([str(bin_dir()), environ.get("PATH", "")])}


def ray_env(environ: dict[str, str]) -> tuple[dict[str, str], str]:
    """The Ray part of a SuperLink's environment and one line saying which Ray it is."""
    address = environ.get("RAY_ADDRESS", "")
    if address and address != "local":
        return {"RAY_ADDRESS": address}, f"the simulation joins the Ray cluster at RAY_ADDRESS={address}"
    return ({"RAY_ADDRESS": "local", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
            "the simulation starts a private Ray on 127.0.0.1 (dashboard off)")


def write_connection(home: Path, address: str, insecure: bool = True) -> None:
    """$FLWR_HOME/config.toml with one named connection, the default."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
        f'address = "{address}"\ninsecure = {str(insecure).lower()}\n')


class Target:
    """An existing SuperLink: ``--superlink ADDRESS`` (private FLWR_HOME) or ``--connection NAME``."""

    owned = False

    def __init__(self, address: str | None = None, connection: str | None = None) -> None:
        self.env = base_env(dict(os.environ))
        self.home = Path(tempfile.mkdtemp(prefix="fedsnn-flwr-"))  # also the neutral working folder
        if address:
            write_connection(self.home, address)
            self.env["FLWR_HOME"] = str(self.home)
            self.connection, self.describe = CONNECTION, f"SuperLink at {address}"
        else:
            self.connection, self.describe = str(connection), f"SuperLink connection '{connection}'"

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, keep_log_in: Path | None = None) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


class OwnedSuperLink(Target):
    """A simulation SuperLink started for one run and stopped with it."""

    owned = True

    def __init__(self) -> None:  # noqa: super().__init__ is not wanted: nothing exists yet
        self.home = Path(tempfile.mkdtemp(prefix="fedsnn-superlink-"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        ray, self.ray_note = ray_env(dict(os.environ))
        self.env = {**base_env(dict(os.environ)), **ray, "FLWR_HOME": str(self.home)}
        self.connection, self.describe = CONNECTION, f"own SuperLink on {self.address}"
        self.process: subprocess.Popen | None = None
        write_connection(self.home, self.address)

    def __enter__(self) -> "OwnedSuperLink":
        self.start()
        return self

    def start(self) -> None:
        cmd = [command("flower-superlink"), "--insecure", "--simulation", "--host", "127.0.0.1",
               "--port", str(self.port), "--database", str(self.home / "state.db"),
               "--log-file", str(self.home / "superlink.log")]
        # own session: a Ctrl-C in the terminal reaches fedsnn-run only, which then stops the run in order;
        # if fedsnn-run is killed outright the kernel sends the SuperLink SIGTERM (Linux)
        self.process = subprocess.Popen(cmd, cwd=self.home, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flower-superlink exited with code {self.process.returncode}; "
                                   f"log: {self.log_tail()}")
            try:
                if httpx.get(f"http://{self.address}/health", timeout=1.0).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.close()
        raise RuntimeError(f"flower-superlink did not answer on {self.address} within {STARTUP_TIMEOUT_S:.0f} s")

    def log_tail(self, lines: int = 5) -> str:
        log = self.home / "superlink.log"
        return " | ".join(log.read_text().splitlines()[-lines:]) if log.exists() else "(no log)"

    def close(self, keep_log_in: Path | None = None) -> None:
        """Stop the SuperLink and every process it started (by PID); keep its log with the run."""
        if self.process is not None and self.process.poll() is None:
            family = descendants(self.process.pid)
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            stop_pids(family)
        if keep_log_in is not None and (self.home / "superlink.log").exists() and keep_log_in.is_dir():
            shutil.copy(self.home / "superlink.log", keep_log_in / "superlink.log")
        shutil.rmtree(self.home, ignore_errors=True)


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def stop_pids(pids: list[int], grace_s: float = 10.0) -> None:
    """SIGTERM each listed process still alive, then SIGKILL what remains after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in pids if _alive(p)]
        for p in alive:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while any(_alive(p) for p in alive) and time.monotonic() < deadline:
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False
