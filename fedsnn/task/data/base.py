"""In-memory labelled datasets shared by every loader.

All loaders return a ``Split`` pair (train, test) of ``LabelledData``: a float
tensor of samples in [0, 1] and a long tensor of labels. Static images are
[N, C, H, W]; event data binned into frames are [N, T, C, H, W]. The datasets
this project attacks are small enough to hold in memory, which keeps batch
re-derivation (for scoring) exact and cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from fedsnn.errors import DataNotFoundError


@dataclass(frozen=True)
class LabelledData:
    """samples: float32 [N, C, H, W] (images) or [N, T, C, H, W] (event frames).

    label_source says where the labels come from: 'given' (the publisher's) by
    default; a subset whose labels were inferred says so (DVS128 Gesture cuts),
    and every record made from it carries that.
    """

    samples: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    class_names: tuple[str, ...] = ()
    label_source: str = "given"

    def __post_init__(self) -> None:
        if len(self.samples) != len(self.labels):
            raise ValueError(f"{len(self.samples)} samples but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_event(self) -> bool:
        return self.samples.dim() == 5

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one sample, without the time axis of event data."""
        return tuple(self.samples.shape[-3:])  # type: ignore[return-value]

    def subset(self, indices: torch.Tensor | list[int]) -> "LabelledData":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return LabelledData(self.samples[idx], self.labels[idx], self.num_classes, self.class_names, self.label_source)


@dataclass(frozen=True)
class Split:
    train: LabelledData
    test: LabelledData


def require_root(dataset: str, root: Path | None) -> Path:
    """``root`` itself; a DataNotFoundError when no data-dir was given (only mnist has a built-in sample)."""
    if root is None:
        raise DataNotFoundError(
            dataset, "", [f"<data-dir>/{dataset}/..."],
            "set data-dir to the folder that holds it; only mnist has a built-in sample",
        )
    return root
