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

from fedsnn.launch import DEFAULT_FEDERATION, launch, parse_run_config, toml_overrides
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
    extra = parse_run_config([args.run_config])  # overrides the file's values, for both fleets
    runs = {}
    for i, model in enumerate(FLEETS, 1):
        print(f"compare_fleets [{model}]: fleet {i} of {len(FLEETS)} starting", flush=True)
        result = launch(ROOT, [toml_overrides({**shared, **extra, "model": model})], args.federation_config,
                        prefix=f"[{model}] ")
        if result.code != 0 or result.run_dir is None:
            print(f"compare_fleets [{model}]: the fleet did not complete ({result.status or result.code})", file=sys.stderr)
            return result.code or 1
        runs[model] = result.run_dir
    out = create_run_dir(runs[FLEETS[0]].parent, f"{shared.get('name', 'fleets')}-comparison")
    print(f"compare_fleets: report at {compare(runs, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
