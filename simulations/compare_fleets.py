"""Run the ANN fleet and the SNN fleet under identical conditions, then compare.

    python -m simulations.compare_fleets [--config simulations/configs/compare-mnist.toml]
        [--run-config "num-rounds=2"] [--federation-config "num-supernodes=2 client-resources-num-cpus=1"]

Both runs share every setting but ``model`` (same seed: same partitions,
client sampling, batches and initial weights). The report (report.md, plots,
grids) is written to ``<output-dir>/<timestamp>-<name>-comparison/``.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from fedsnn.launch import DEFAULT_FEDERATION, launch, toml_overrides
from fedsnn.experiment.reporting import compare
from fedsnn.experiment.runs import create_run_dir

ROOT = Path(__file__).resolve().parents[1]
FLEETS = ("lenet", "snn-lenet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "simulations" / "configs" / "compare-mnist.toml")
    parser.add_argument("--run-config", default="", help="extra overrides for both fleets")
    parser.add_argument("--federation-config", default=DEFAULT_FEDERATION)
    args = parser.parse_args(argv)
    with open(args.config, "rb") as f:
        shared = tomllib.load(f)
    if "data-dir" in shared and not Path(shared["data-dir"]).is_absolute():
        shared["data-dir"] = str((ROOT / shared["data-dir"]).resolve())
    runs = {}
    for model in FLEETS:
        result = launch(ROOT, [toml_overrides({**shared, "model": model}), args.run_config], args.federation_config)
        if result.code != 0 or result.run_dir is None:
            print(f"compare_fleets: the {model} fleet did not complete ({result.status or result.code})", file=sys.stderr)
            return result.code or 1
        runs[model] = result.run_dir
    out = create_run_dir(runs[FLEETS[0]].parent, f"{shared.get('name', 'fleets')}-comparison")
    print(f"compare_fleets: report at {compare(runs, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
