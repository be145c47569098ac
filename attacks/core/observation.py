"""What a curious server observes of one client's update, and nothing more.

The attacker's whole view of a client is an ``ObservedUpdate``: the model it
sent (spec + global weights), the weights that came back, and what the client
declares about its training (mode, lr, local steps, batch size, example count).
There is deliberately no field through which the client's data could enter;
ground truth reaches only the evaluator (``fedsnn.analysis.metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from fedsnn.errors import ConfigError
from fedsnn.task.models import ModelSpec

MODES = ("fedsgd", "fedavg")
MODALITIES = ("image", "events")


@dataclass(frozen=True)
class ObservedUpdate:
    """One client's update as the server sees it.

    Attributes
    ----------
    spec : ModelSpec
        The victim architecture (the server built it, so it knows it).
    global_weights : Mapping[str, torch.Tensor]
        The state the server sent, keys as in ``model.state_dict()``.
    client_weights : Mapping[str, torch.Tensor]
        The state the client sent back, same keys and shapes.
    mode : str
        'fedsgd' (one SGD step on one batch) or 'fedavg' (``local_steps`` steps).
    lr : float
        The client's learning rate. Clients use plain SGD (no momentum, no
        weight decay) on the mean cross-entropy over a batch.
    local_steps : int
        SGD steps the client took; 1 for fedsgd.
    batch_size : int
        Samples per local step.
    num_examples : int
        Samples the client trained on (the size of the batch to rebuild under fedavg).
    labels : tuple[int, ...] | None
        Optional attacker knowledge (breaching-style): the labels of the
        reconstructed batch. ``None`` means the attack must infer them.
    modality : str
        'image' (static images, replicated over T by an SNN) or 'events'
        (T frames per sample): public knowledge of the federated task.
    """

    spec: ModelSpec
    global_weights: Mapping[str, torch.Tensor]
    client_weights: Mapping[str, torch.Tensor]
    mode: str
    lr: float
    local_steps: int
    batch_size: int
    num_examples: int
    labels: tuple[int, ...] | None = None
    modality: str = "image"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError("mode", self.mode, MODES)
        if self.modality not in MODALITIES:
            raise ConfigError("modality", self.modality, MODALITIES)
        if not self.lr > 0:
            raise ConfigError("lr", self.lr, "a positive float")
        for key in ("local_steps", "batch_size", "num_examples"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(key, getattr(self, key), "a positive integer")
        if self.mode == "fedsgd" and self.local_steps != 1:
            raise ConfigError("local_steps", self.local_steps, "1 under fedsgd")
        if set(self.global_weights) != set(self.client_weights):
            raise ValueError("global_weights and client_weights must have the same keys")
        for name, value in self.global_weights.items():
            if tuple(value.shape) != tuple(self.client_weights[name].shape):
                raise ValueError(f"weight {name!r}: shape {tuple(value.shape)} sent, "
                                 f"{tuple(self.client_weights[name].shape)} returned")
        if self.labels is not None:
            if len(self.labels) != self.reconstruction_size:
                raise ValueError(f"{len(self.labels)} labels given for a batch of {self.reconstruction_size}")
            if any(not 0 <= int(y) < self.spec.num_classes for y in self.labels):
                raise ValueError(f"labels {self.labels} outside [0, {self.spec.num_classes})")

    @property
    def reconstruction_size(self) -> int:
        """How many samples the attack rebuilds: the batch under fedsgd, every
        example the client trained on under fedavg."""
        return self.batch_size if self.mode == "fedsgd" else self.num_examples

    def observed_gradient(self) -> dict[str, torch.Tensor]:
        """The update expressed as a mean gradient, name -> tensor (float32).

        fedsgd: exactly the client's batch gradient, ``(global - client) / lr``.
        fedavg: the gradient averaged over its local steps,
        ``(global - client) / (lr * local_steps)``; it equals the gradient at the
        global weights only to first order (the 'average-gradient' approximation).
        Only floating-point entries are returned (integer buffers carry no gradient).
        """
        scale = 1.0 / (self.lr * self.local_steps)
        return {
            name: (g.detach().float() - self.client_weights[name].detach().float()) * scale
            for name, g in self.global_weights.items()
            if torch.is_floating_point(g)
        }
