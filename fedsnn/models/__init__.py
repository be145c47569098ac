"""Victim models: ``lenet`` (ANN) and ``snn-lenet`` (SpikingJelly), one builder."""

from __future__ import annotations

import torch
from torch import nn

from fedsnn.models.init import INITS, initialise
from fedsnn.models.lenet import LeNet, ModelSpec
from fedsnn.models.snn_lenet import NEURONS, SNNLeNet
from fedsnn.models.surrogate import SURROGATES

MODELS = ("lenet", "snn-lenet")

__all__ = ["MODELS", "INITS", "NEURONS", "SURROGATES", "ModelSpec", "LeNet", "SNNLeNet", "build_model", "is_spiking"]


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
