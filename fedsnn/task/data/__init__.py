"""Datasets, shards and the deterministic per-round batches clients train on."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fedsnn.task.data.base import LabelledData, Split
from fedsnn.task.data.loaders import DATASETS, EVENT_DATASETS, LOADERS
from fedsnn.task.data.partition import PARTITIONINGS, class_histograms, partition

__all__ = [
    "DATASETS", "EVENT_DATASETS", "PARTITIONINGS", "LabelledData", "Split", "load_dataset", "partition", "class_histograms",
]


@lru_cache(maxsize=4)
def load_dataset(
    name: str, data_dir: str = "", image_size: int = 0, timesteps: int = 20, seed: int = 0, download: bool = False
) -> Split:
    """Load ``name`` from ``data_dir`` ('' = the built-in MNIST sample), cached per process.

    image_size = 0 keeps each dataset's default (LFW 32x32, others native).
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    root = Path(data_dir).expanduser().resolve() if data_dir else None
    kwargs: dict[str, object] = {"download": download, "seed": seed, "timesteps": timesteps}
    if image_size:
        kwargs["image_size"] = image_size
    return LOADERS[name](root, **kwargs)
