import os
import sys
import tempfile
from pathlib import Path

# judges trained by tests go to a throw-away cache, never the user's
os.environ.setdefault("FEDSNN_CACHE", tempfile.mkdtemp(prefix="fedsnn-test-cache-"))

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
    return {"num-rounds": 2, "eval-samples": 200, "output-dir": str(tmp_path / "runs"), "local-steps": 5,
            "judge": "none", "attacks": "none", "gamin-rounds": "none"}
