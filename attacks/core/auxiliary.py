"""Data an attacker declares it holds: public samples of the task's distribution, no client's.

Threat model: the server may hold data like the
clients' (the split it evaluates on, or any public set) but none of their
own samples. Every use is declared: the record of an attack that reads it
names ``source``. The experiment floor builds it and checks it is disjoint
from every client's shard (``fedsnn.experiment.auxiliary``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class AuxiliaryData:
    """Labelled samples the attacker holds.

    Attributes
    ----------
    samples : torch.Tensor
        float [N, C, H, W] (images) or [N, T, C, H, W] (events).
    labels : torch.Tensor
        long [N].
    num_classes : int
    source : str
        Where it comes from, recorded with every result that used it
        (e.g. "mnist test split, 1000 samples").
    """

    samples: torch.Tensor = field(compare=False, repr=False)
    labels: torch.Tensor = field(compare=False, repr=False)
    num_classes: int = 10
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.samples) != len(self.labels) or len(self.samples) == 0:
            raise ValueError(f"auxiliary data: {len(self.samples)} samples, {len(self.labels)} labels")

    def mean(self) -> torch.Tensor:
        """The mean sample [C, H, W] (or [T, C, H, W])."""
        return self.samples.float().mean(0)

    def class_means(self) -> torch.Tensor:
        """[K, C, H, W]: the mean sample of each class; a class absent here gets the overall mean."""
        means = self.mean().expand(self.num_classes, *self.samples.shape[1:]).clone()
        for c in range(self.num_classes):
            chosen = self.labels == c
            if bool(chosen.any()):
                means[c] = self.samples[chosen].float().mean(0)
        return means
