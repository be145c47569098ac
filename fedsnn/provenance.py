"""Where a result came from: the code's git commit (or a source digest) and library versions.

Recorded with every run, table and checkpoint. It sits on the bottom floor
beside ``fedsnn.errors`` because every floor writes results.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from fedsnn import __version__

PACKAGES = ("fedsnn", "torch", "torchvision", "spikingjelly", "snntorch", "tonic", "flwr", "numpy", "scikit-image")


def code_version(root: Path | None = None) -> str:
    """git commit of the code (with '+dirty' if modified), else the package version.

    ``root``: the checkout to describe (default: this package's folder).
    """
    here = Path(root).resolve() if root is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return commit.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return f"fedsnn-{__version__}+src.{source_digest(here if root is not None else here.parent)}"


def source_digest(root: Path) -> str:
    """sha256 over the app's .py files: identifies the code where git is absent
    (Flower runs apps from a copy without .git)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" not in path.parts and ".venv" not in path.parts:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions


def provenance() -> dict[str, Any]:
    """Code and library versions recorded with every result."""
    return {"code_version": code_version(), "versions": library_versions(),
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
