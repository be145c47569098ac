"""The task's models: the victims ``lenet`` (ANN) and ``snn-lenet`` (SpikingJelly) with one
builder, their stacked per-victim form, the GAMIN paper's targets, input encodings and
the shared soft cross-entropy. Nothing here knows it may be attacked."""

from __future__ import annotations

import torch
from torch import nn

from fedsnn.task.models.encodings import ENCODINGS, encode
from fedsnn.task.models.init import INITS, initialise
from fedsnn.task.models.lenet import LeNet, ModelSpec
from fedsnn.task.models.snn_lenet import NEURONS, SNNLeNet
from fedsnn.task.models.losses import soft_cross_entropy
from fedsnn.task.models.stacked import stacked_logits
from fedsnn.task.models.surrogate import SURROGATES
from fedsnn.task.models.targets import SNNTarget, Target, TargetSpec, build_target, load_target, save_target

MODELS = ("lenet", "snn-lenet")

__all__ = [
    "MODELS", "INITS", "NEURONS", "SURROGATES", "ENCODINGS", "ModelSpec", "LeNet", "SNNLeNet", "build_model",
    "is_spiking", "soft_cross_entropy", "stacked_logits", "encode", "Target", "TargetSpec", "SNNTarget",
    "build_target", "load_target", "save_target",
]


def build_model(spec: ModelSpec, seed: int | None = None) -> nn.Module:
    """Build and initialise the model ``spec`` describes.

    With ``seed`` the weights are a deterministic function of (spec, seed), so
    the ANN and the SNN built from the same seed share identical weights.
    """
    if spec.name == "lenet":
        model: nn.Module = LeNet(spec.input_shape, spec.num_classes)
    elif spec.name == "snn-lenet":
        model = SNNLeNet(spec.input_shape, spec.num_classes, spec.timesteps, spec.neuron, spec.surrogate)
    else:
        raise ValueError(f"unknown model {spec.name!r}; expected one of {MODELS}")
    generator = None
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
        if spec.init == "default":
            torch.manual_seed(seed)
    initialise(model, spec.init, generator)
    return model


def is_spiking(model: nn.Module) -> bool:
    return isinstance(model, SNNLeNet)
