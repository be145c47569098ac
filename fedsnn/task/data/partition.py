"""Split a training set into client shards: IID or Dirichlet(alpha) non-IID.

Both schemes are a deterministic function of (labels, num_partitions, seed) and
put every training sample in exactly one shard, so the ANN and SNN fleets of
one seed train on identical shards, and the evaluator can re-derive any
client's data without it ever travelling in a message.
"""

from __future__ import annotations

import numpy as np

PARTITIONINGS = ("iid", "dirichlet")


def partition(
    labels: np.ndarray, num_partitions: int, scheme: str = "iid", alpha: float = 0.5, seed: int = 0,
    min_size: int = 1, max_tries: int = 100,
) -> list[np.ndarray]:
    """Return ``num_partitions`` sorted index arrays covering ``range(len(labels))``.

    ``dirichlet``: for each class c, proportions p ~ Dir(alpha * 1) split that
    class's samples across clients (small alpha: few classes per client).
    Draws are repeated (same RNG stream) until every shard has ``min_size``.
    """
    n = len(labels)
    if num_partitions < 1 or num_partitions > n:
        raise ValueError(f"num_partitions must be in [1, {n}], got {num_partitions}")
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        return [np.sort(s) for s in np.array_split(rng.permutation(n), num_partitions)]
    if scheme != "dirichlet":
        raise ValueError(f"unknown partitioning {scheme!r}; expected one of {PARTITIONINGS}")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    for _ in range(max_tries):
        shards: list[list[int]] = [[] for _ in range(num_partitions)]
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(num_partitions, alpha))) * len(idx)).astype(int)[:-1]
            for shard, part in zip(shards, np.split(idx, cuts)):
                shard.extend(part.tolist())
        if min(len(s) for s in shards) >= min_size:
            return [np.sort(np.array(s, dtype=np.int64)) for s in shards]
    raise ValueError(
        f"Dirichlet(alpha={alpha}) left a shard with fewer than {min_size} samples after {max_tries} draws; "
        "raise alpha or use fewer partitions"
    )


def class_histograms(labels: np.ndarray, shards: list[np.ndarray], num_classes: int) -> list[list[int]]:
    """Per-shard class counts, written with every run."""
    return [np.bincount(labels[s], minlength=num_classes).tolist() for s in shards]
