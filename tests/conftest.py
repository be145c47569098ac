import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
torch.set_num_threads(1)


@pytest.fixture()
def tiny_run_config(tmp_path):
    """A run config that trains in about a second: LeNet, 2 rounds, small eval."""
    return {"num-rounds": 2, "eval-samples": 200, "output-dir": str(tmp_path / "runs"), "local-steps": 5}
