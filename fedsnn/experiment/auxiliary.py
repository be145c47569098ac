"""The attacker's declared auxiliary data in a federation: the test split, which no client holds.

Clients hold shards of the train split; the server evaluates the global model
on the test split, so a server holds that split anyway. It is the attacker's
auxiliary data by default: public data of the task's distribution, disjoint
from every client's shard by construction, and checked sample by sample
(``check_disjoint``) so that a dataset with duplicates across splits is caught.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from attacks.core import AuxiliaryData
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import dataset_for, shards


def auxiliary_data(cfg: RunConfig) -> AuxiliaryData:
    """The test split as the attacker's auxiliary data (``source`` names it)."""
    test = dataset_for(cfg).test
    return AuxiliaryData(test.samples, test.labels, test.num_classes,
                         f"{cfg.dataset} test split ({len(test)} samples; no client holds it)")


def _digests(samples: torch.Tensor) -> set[str]:
    flat = samples.detach().cpu().contiguous().flatten(1).numpy()
    return {hashlib.sha1(row.tobytes()).hexdigest() for row in flat}


def check_disjoint(aux: AuxiliaryData, cfg: RunConfig, num_partitions: int) -> None:
    """Raise ValueError if any auxiliary sample equals a sample of some client's shard."""
    train = dataset_for(cfg).train
    held = np.concatenate(shards(cfg, num_partitions))
    overlap = _digests(aux.samples) & _digests(train.samples[torch.as_tensor(held)])
    if overlap:
        raise ValueError(f"auxiliary data ({aux.source}) shares {len(overlap)} samples with the clients' shards")
