"""FedAvg with reproducible, partition-based client sampling and round records.

Flower samples random node ids, which differ between runs; this strategy
samples *partitions* with a seeded RNG (``fedsnn.experiment.federation.sample_partitions``)
so an ANN fleet and an SNN fleet of one seed train the same clients in the same
rounds. Aggregation is FedAvg's own (``super().aggregate_train``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedsnn.errors import TrainingFailed
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import sample_partitions
from fedsnn.experiment.federation_records import FederationRecorder
from fedsnn.experiment.health import training_failure

log = logging.getLogger("fedsnn")


class PartitionSampledFedAvg(FedAvg):
    """FedAvg over seeded partition samples; a round in which no client trained ends the run."""

    def __init__(self, cfg: RunConfig, node_partitions: dict[int, int], recorder: FederationRecorder) -> None:
        super().__init__(
            fraction_train=cfg.fraction_train, fraction_evaluate=0.0, min_train_nodes=1,
            min_evaluate_nodes=0, min_available_nodes=cfg.min_nodes,
        )
        self.cfg, self.node_partitions, self.recorder = cfg, node_partitions, recorder

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        chosen = set(sample_partitions(self.cfg, server_round, list(self.node_partitions.values())))
        node_ids = sorted(n for n, p in self.node_partitions.items() if p in chosen)
        config["server-round"] = server_round
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        self.recorder.note_round(server_round, {"sampled-partitions": sorted(chosen)})
        log.info("round %d: training partitions %s", server_round, sorted(chosen))
        return self._construct_messages(record, node_ids, MessageType.TRAIN)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        replies = list(replies)
        failed = [
            {"partition": self.node_partitions.get(m.metadata.src_node_id), "reason": m.error.reason}
            for m in replies if m.has_error()
        ]
        ok = [m for m in replies if not m.has_error()]
        self.recorder.note_round(server_round, {
            "clients-ok": len(ok), "clients-failed": failed,
            "train-loss": _mean([float(m.content["metrics"]["train-loss"]) for m in ok]),
        })
        if not ok:  # nothing to aggregate: record the round, then stop the run as failed
            line = self.recorder.record_round(server_round, {"accuracy": None, "loss": None})
            verdict = training_failure([line])
            log.error("fedsnn run failed: %s", verdict)
            raise TrainingFailed(verdict)
        return super().aggregate_train(server_round, replies)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
