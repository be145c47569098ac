"""Split a training set into client shards with Flower Datasets' partitioners.

The label array already loaded in memory becomes a two-column
``datasets.Dataset`` (label, index; built locally with ``Dataset.from_dict``,
nothing downloaded or cached on disk) and one of ``flwr_datasets``'
partitioners cuts it:

    iid           ``IidPartitioner`` on the table shuffled with ``seed``: equal
                  contiguous pieces of one seeded permutation (the same
                  shards as ``np.array_split(default_rng(seed).permutation(n), k)``)
    dirichlet     ``DirichletPartitioner(alpha)``: per class, proportions
                  ~ Dir(alpha) over clients (small alpha: few classes per client),
                  redrawn until every shard has ``min_size`` samples
    pathological  ``PathologicalPartitioner``: each client holds
                  ``classes_per_partition`` classes, client i's first one class
                  i mod K (so with at least K clients every class is used), the
                  others drawn with ``seed``
    shard         ``ShardPartitioner``: the label-sorted table cut into shards,
                  ``shards_per_partition`` per client (McMahan et al.'s non-IID MNIST)

Every scheme is a deterministic function of (labels, num_partitions, scheme,
its parameter, seed), so the ANN and SNN fleets of one seed train on identical
shards, and the evaluator can re-derive any client's data without it ever
travelling in a message. iid and dirichlet put every sample in exactly one
shard; pathological and shard may leave samples out (classes no client
draws, the remainder of the shards), which the partition report's sizes show.
"""

from __future__ import annotations

import numpy as np

PARTITIONINGS = ("iid", "dirichlet", "pathological", "shard")


def partition(
    labels: np.ndarray, num_partitions: int, scheme: str = "iid", alpha: float = 0.5, seed: int = 0,
    min_size: int = 1, classes_per_partition: int = 2, shards_per_partition: int = 2,
) -> list[np.ndarray]:
    """Return ``num_partitions`` sorted, disjoint index arrays into ``labels`` (int [n]).

    Raises ValueError naming the parameter when the scheme cannot give every
    shard ``min_size`` samples or a parameter is out of range.
    """
    # Imported here, not at module level: ``datasets`` and ``flwr_datasets`` take
    # seconds of CPU to import, and only the code that makes shards needs them
    # (every other user of fedsnn.task.data, the attacks' tests included, does not).
    from datasets import Dataset
    from flwr_datasets.partitioner import (DirichletPartitioner, IidPartitioner, PathologicalPartitioner,
                                           ShardPartitioner)

    n = len(labels)
    if num_partitions < 1 or num_partitions > n:
        raise ValueError(f"num_partitions must be in [1, {n}], got {num_partitions}")
    if scheme not in PARTITIONINGS:
        raise ValueError(f"unknown partitioning {scheme!r}; expected one of {PARTITIONINGS}")
    if scheme == "dirichlet" and alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    table = Dataset.from_dict({"label": np.asarray(labels, dtype=np.int64), "index": np.arange(n, dtype=np.int64)})
    by_label = {"num_partitions": num_partitions, "partition_by": "label", "shuffle": True, "seed": seed}
    if scheme == "iid":
        partitioner, table = IidPartitioner(num_partitions), table.shuffle(seed=seed)
    elif scheme == "dirichlet":
        partitioner = DirichletPartitioner(alpha=alpha, min_partition_size=min_size, **by_label)
    elif scheme == "pathological":
        partitioner = PathologicalPartitioner(num_classes_per_partition=classes_per_partition,
                                              class_assignment_mode="first-deterministic", **by_label)
    else:
        partitioner = ShardPartitioner(num_shards_per_partition=shards_per_partition, **by_label)
    partitioner.dataset = table
    shards = [np.sort(np.asarray(partitioner.load_partition(i)["index"], dtype=np.int64))
              for i in range(num_partitions)]
    smallest = min(len(s) for s in shards)
    if smallest < min_size:
        knob = {"iid": "num_partitions", "dirichlet": "alpha", "pathological": "classes_per_partition",
                "shard": "shards_per_partition"}[scheme]
        raise ValueError(f"{scheme} partitioning left a shard with {smallest} < {min_size} samples; "
                         f"change {knob} or use fewer partitions")
    return shards


def class_histograms(labels: np.ndarray, shards: list[np.ndarray], num_classes: int) -> list[list[int]]:
    """Per-shard class counts, written with every run."""
    return [np.bincount(labels[s], minlength=num_classes).tolist() for s in shards]
