"""The evaluator's view: a client's batch re-derived from the federation plan, never transmitted.

A client's training batch in a round is a deterministic function of (dataset,
seed, partition id, round) (``fedsnn.task.training.local_batches``). The
evaluator re-derives it here to score a reconstruction; the attacker never
calls this (its view is ``attacks.ObservedUpdate``, tested in
tests/test_curious_server.py and tests/attacks/test_attack_api.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import dataset_for, local_plan, shards
from fedsnn.task.data import LabelledData
from fedsnn.task.training import local_batches


def ground_truth(cfg: RunConfig, partition_id: int, num_partitions: int, server_round: int) -> LabelledData:
    """The distinct samples client ``partition_id`` trained on in ``server_round``, in first-use order."""
    return dataset_for(cfg).train.subset(_used(cfg, partition_id, num_partitions, server_round))


def round_ground_truth(cfg: RunConfig, partitions: Sequence[int], num_partitions: int, server_round: int) -> LabelledData:
    """The union of the samples ``partitions`` trained on in ``server_round`` (shards are disjoint):
    the victims of an attack on the round's aggregate (secure aggregation)."""
    order = np.concatenate([_used(cfg, p, num_partitions, server_round) for p in sorted(partitions)])
    return dataset_for(cfg).train.subset(order)


def _used(cfg: RunConfig, partition_id: int, num_partitions: int, server_round: int) -> np.ndarray:
    batches = local_batches(shards(cfg, num_partitions)[partition_id], local_plan(cfg), cfg.seed, partition_id, server_round)
    order = np.concatenate(batches)
    _, first = np.unique(order, return_index=True)
    return order[np.sort(first)]
