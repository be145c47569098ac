"""A federated run's own records, written as the federation runs (``FederationRecorder``).

Leakage has its own records (``fedsnn.experiment.leakage_records``); both write
through the file primitives of ``fedsnn.experiment.runs``.

    config.json      resolved config, config hash, code and library versions
    partitions.json  shard sizes and class histograms
    metrics.jsonl    one line per round (global accuracy/loss, client stats),
    metrics.csv      the same, flat; both appended and flushed per round
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.runs import RecordLog, Stopwatch, create_run_dir, write_json
from fedsnn.provenance import provenance

log = logging.getLogger("fedsnn")

METRIC_COLUMNS = [
    "round", "model", "dataset", "test-accuracy", "test-loss", "train-loss",
    "clients-ok", "clients-failed", "elapsed-s", "config-hash",
]


def launched_from(cfg: RunConfig) -> dict[str, Any]:
    """The checkout fedsnn-run was started from (Flower runs a copy without .git)."""
    commit = cfg.source_commit
    if not commit:
        return {"git-commit": None, "git-dirty": None,
                "null-reasons": {"git-commit": "not launched by fedsnn-run: source-commit is empty"}}
    return {"git-commit": commit.removesuffix("+dirty"), "git-dirty": commit.endswith("+dirty")}


class FederationRecorder:
    """Creates the run folder and appends one metrics line per round (``record_round``)."""

    def __init__(self, cfg: RunConfig, run_dir: Path) -> None:
        self.cfg, self.dir = cfg, run_dir
        self.metrics = RecordLog(run_dir / "metrics.jsonl", run_dir / "metrics.csv", METRIC_COLUMNS)
        self.clock = Stopwatch()
        self.round_stats: dict[int, dict[str, Any]] = {}

    @classmethod
    def create(cls, cfg: RunConfig, extra: dict[str, Any] | None = None) -> "FederationRecorder":
        run_dir = create_run_dir(cfg.output_dir, cfg.name)
        write_json(run_dir / "config.json", {
            "run-config": cfg.to_dict(), "config-hash": cfg.digest(), **provenance(), **launched_from(cfg),
            **(extra or {}),
        })
        log.info("fedsnn run folder: %s", run_dir.resolve())
        return cls(cfg, run_dir)

    def write_partitions(self, report: dict[str, Any]) -> None:
        write_json(self.dir / "partitions.json", report)

    def note_round(self, server_round: int, stats: dict[str, Any]) -> None:
        """Client-side facts of a round (who trained, who failed), merged into its line."""
        self.round_stats.setdefault(server_round, {}).update(stats)

    def record_round(self, server_round: int, evaluation: dict[str, float | None]) -> dict[str, Any]:
        """One metrics line; ``evaluation`` holds None values for a round that produced no model."""
        stats = {"train-loss": None, "clients-ok": 0, "clients-failed": [], **self.round_stats.pop(server_round, {})}
        record = {
            "round": server_round, "model": self.cfg.model, "dataset": self.cfg.dataset,
            "test-accuracy": evaluation["accuracy"], "test-loss": evaluation["loss"],
            "elapsed-s": round(self.clock.seconds(), 3), "config-hash": self.cfg.digest(), **stats,
        }
        self.metrics.append(record)
        if evaluation["accuracy"] is None:
            log.info("round %d: no global model (no client trained)", server_round)
        else:
            log.info("round %d: global test accuracy %.4f, loss %.4f, clients trained %d, failed %d", server_round,
                     evaluation["accuracy"], evaluation["loss"], stats["clients-ok"], len(stats["clients-failed"]))
        return record
