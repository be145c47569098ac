"""What a client does and what the server needs, as plain functions of RunConfig.

The Flower handlers in clients/ and server/ are thin wrappers over these, so
everything here runs (and is tested) without Flower or Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.settings import resolve_device
from fedsnn.task.data import LabelledData, Split, class_histograms, load_dataset, partition
from fedsnn.task.models import ModelSpec, build_model
from fedsnn.task.training import LocalPlan, accuracy_and_loss, local_batches, train_local


def dataset_for(cfg: RunConfig) -> Split:
    return load_dataset(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.timesteps, cfg.seed, cfg.download)


def model_spec(cfg: RunConfig, data: LabelledData) -> ModelSpec:
    """The architecture every party knows (the attacker included)."""
    return ModelSpec(cfg.model, data.input_shape, data.num_classes, cfg.init, cfg.timesteps, cfg.neuron, cfg.surrogate)


def local_plan(cfg: RunConfig) -> LocalPlan:
    return LocalPlan(cfg.mode, cfg.batch_size, cfg.lr, cfg.local_epochs, cfg.local_steps)


@lru_cache(maxsize=8)
def shards(cfg: RunConfig, num_partitions: int) -> tuple[np.ndarray, ...]:
    """Every client's training indices; identical for every fleet of one seed."""
    labels = dataset_for(cfg).train.labels.numpy()
    return tuple(partition(labels, num_partitions, cfg.partitioning, cfg.alpha, cfg.seed, min_size=cfg.batch_size // 4 + 1,
                           classes_per_partition=cfg.classes_per_partition,
                           shards_per_partition=cfg.shards_per_partition))


def partition_report(cfg: RunConfig, num_partitions: int) -> dict[str, object]:
    """Shard sizes and class histograms, written with the run."""
    train = dataset_for(cfg).train
    parts = shards(cfg, num_partitions)
    return {
        "num-partitions": num_partitions,
        "scheme": cfg.partitioning,
        "alpha": cfg.alpha if cfg.partitioning == "dirichlet" else None,
        "classes-per-partition": cfg.classes_per_partition if cfg.partitioning == "pathological" else None,
        "shards-per-partition": cfg.shards_per_partition if cfg.partitioning == "shard" else None,
        "sizes": [len(s) for s in parts],
        "class-histograms": class_histograms(train.labels.numpy(), list(parts), train.num_classes),
    }


def initial_model(cfg: RunConfig) -> nn.Module:
    """The global model of round 0: a deterministic function of (config, seed)."""
    return build_model(model_spec(cfg, dataset_for(cfg).train), seed=cfg.seed)


@dataclass(frozen=True)
class ClientUpdate:
    """What a client sends back: weights, example count and declared metadata."""

    state: dict[str, torch.Tensor]
    num_examples: int
    metrics: dict[str, float]
    declared: dict[str, int | float | str]


def client_train(
    cfg: RunConfig, global_state: dict[str, torch.Tensor], partition_id: int, num_partitions: int, server_round: int
) -> ClientUpdate:
    """One client's local training for one round, starting from the global weights."""
    torch.manual_seed(cfg.seed * 100_003 + partition_id * 1_009 + server_round)
    data = dataset_for(cfg).train
    model = build_model(model_spec(cfg, data))
    model.load_state_dict(global_state)
    plan = local_plan(cfg)
    batches = local_batches(shards(cfg, num_partitions)[partition_id], plan, cfg.seed, partition_id, server_round)
    metrics = train_local(model, data, batches, plan.lr, resolve_device(cfg.device))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    declared = {
        "partition-id": partition_id, "mode": plan.mode, "batch-size": len(batches[0]),
        "local-steps": len(batches), "lr": plan.lr, "timesteps": cfg.timesteps,
    }
    return ClientUpdate(state, sum(len(b) for b in batches), metrics, declared)


def global_accuracy_and_loss(cfg: RunConfig, state: dict[str, torch.Tensor]) -> dict[str, float]:
    """Accuracy and loss of the global model on the held-out test split."""
    test = dataset_for(cfg).test
    if cfg.eval_samples and cfg.eval_samples < len(test):
        test = test.subset(np.arange(cfg.eval_samples))
    model = build_model(model_spec(cfg, test))
    model.load_state_dict(state)
    return accuracy_and_loss(model, test, device=resolve_device(cfg.device))


def sample_partitions(cfg: RunConfig, server_round: int, available: list[int]) -> list[int]:
    """Partitions trained in ``server_round``: seeded, so both fleets get the same."""
    k = max(1, int(round(cfg.fraction_train * len(available))))
    rng = np.random.default_rng([cfg.seed, server_round, 7])
    return sorted(int(p) for p in rng.choice(sorted(available), size=k, replace=False))
