"""Do two bench runs agree? Every median ratio of (a) in the last two blocks of bench/results.md, side by side.

    python -m bench.agreement [--blocks 2] [--tolerance 0.15]

A ratio is a number written 'N [min, max]x' (median [min, max] over the
repeats, bench.interleaved); it is named by its line's head ('(a) idlg lenet')
and the words before it. The difference is |run 2 - run 1| / run 1; rows over
``--tolerance`` are marked. Exit status 1 when any row is over it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.md"
RATIO = re.compile(r"([A-Za-z][A-Za-z ]*?) (\d+(?:\.\d+)?) \[[\d.]+, [\d.]+\]x")


def ratios(block: str) -> dict[str, float]:
    """name -> median of every ratio in one results.md block."""
    out = {}
    for line in block.splitlines():
        if not line.startswith("- (a)"):
            continue
        head = line[2:].split(",")[0]  # '(a) idlg lenet'
        side = "peer" if "peer (plain" in line else "kernel" if "numba kernels vs" in line else "batched"
        for words, median in RATIO.findall(line):
            out[f"{head} {side}: {words.strip()}"] = float(median)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tolerance", type=float, default=0.15)
    args = p.parse_args()
    blocks = [b for b in RESULTS.read_text().split("\n## ") if "- (a)" in b and "[" in b]
    if len(blocks) < 2:
        sys.exit("bench/results.md holds fewer than two runs with interleaved ratios")
    first, second = (ratios(b) for b in blocks[-2:])
    worst = 0.0
    print("| ratio | run 1 | run 2 | difference |\n|---|---|---|---|")
    for name in [n for n in first if n in second]:
        diff = abs(second[name] - first[name]) / first[name]
        worst = max(worst, diff)
        mark = " **over**" if diff > args.tolerance else ""
        print(f"| {name} | {first[name]:g}x | {second[name]:g}x | {100 * diff:.0f}%{mark} |")
    print(f"\nlargest difference {100 * worst:.0f}% (tolerance {100 * args.tolerance:.0f}%)")
    sys.exit(1 if worst > args.tolerance else 0)


if __name__ == "__main__":
    main()
