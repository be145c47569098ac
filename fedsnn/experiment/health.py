"""Did the federation really train? One verdict, read from the per-round records.

Flower reports a run as completed when every round ran, even if every client
failed in every round. A run is a failure here when a round had no client
that trained, or when a client failed in every round it was asked to train.
The ServerApp stops on this verdict (so the run ends finished:failed) and
``fedsnn-run`` prints the same line from ``metrics.jsonl``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def training_failure(records: Iterable[dict[str, Any]]) -> str | None:
    """One line naming the clients and the first reason, or None if the run trained.

    ``records`` are metrics.jsonl lines; round 0 (the initial model) is skipped.
    """
    rounds = [r for r in records if r.get("round", 0) >= 1 and "clients-ok" in r]
    for r in rounds:
        if r["clients-ok"] == 0:  # replies arrive in any order: name them by partition
            failed = sorted(r.get("clients-failed", []), key=lambda f: (f.get("partition") is None, f.get("partition") or 0))
            return (f"no client trained in round {r['round']} (partitions {_names(failed)} failed; "
                    f"first reason: {short_reason(_first_reason(failed))})")
    asked: dict[int, int] = {}
    failures: dict[int, list[str]] = {}
    for r in rounds:
        for p in r.get("sampled-partitions", []):
            asked[p] = asked.get(p, 0) + 1
        for f in r.get("clients-failed", []):
            failures.setdefault(f["partition"], []).append(f["reason"])
    always = sorted(p for p, reasons in failures.items() if p is not None and len(reasons) >= asked.get(p, 1))
    if always:
        first = short_reason(failures[always[0]][0])
        return (f"partition{'s' if len(always) > 1 else ''} {', '.join(map(str, always))} failed in every round "
                f"they were sampled in; first reason: {first}")
    return None


def _names(failed: list[dict[str, Any]]) -> str:
    return ", ".join(str(f.get("partition")) for f in failed) or "none"


def _first_reason(failed: list[dict[str, Any]]) -> str:
    return failed[0]["reason"] if failed else "no client replied"


def short_reason(reason: str, limit: int = 300) -> str:
    """The line of a (traceback-length) reason that says what went wrong, at most ``limit`` characters."""
    lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    text = (errors[-1] if errors else lines[-1]) if lines else "no reason given"
    return text if len(text) <= limit else text[: limit - 3] + "..."
