"""A simulated client's SGD step turned into what the server observes: the one builder of an ObservedUpdate.

Studies (``simulations/``) and tests attack updates of clients that never ran
under Flower. They all build the update here, with the client's own training
function (``fedsnn.task.training.train_local``: plain SGD, so a FedSGD update
is exactly ``-lr * gradient``), so that a study's victim is the federation's
victim.
"""

from __future__ import annotations

import numpy as np
import torch

from attacks.core import ObservedUpdate
from fedsnn.task.data import LabelledData
from fedsnn.task.models import ModelSpec, build_model
from fedsnn.task.training import train_local


def client_update(spec: ModelSpec, model_seed: int, samples: torch.Tensor, labels: torch.Tensor, lr: float,
                  local_steps: int = 1, batch_size: int | None = None, mode: str = "fedsgd") -> ObservedUpdate:
    """The update of a fresh client (``build_model(spec, model_seed)``) after SGD on (samples, labels).

    Parameters
    ----------
    samples : torch.Tensor
        [B, C, H, W] images or [B, T, C, H, W] events (fed to the SNN as frames);
        a single sample [C, H, W] / [T, C, H, W] with a scalar label is taken as B = 1.
    labels : torch.Tensor
        long [B] (or a scalar).
    local_steps, batch_size, mode
        Consecutive minibatches of ``batch_size`` (default: all B) taken in
        order, ``local_steps`` times, wrapping around; 'fedsgd' needs one step.

    Returns
    -------
    ObservedUpdate
        The weights sent and returned and what the client declares; the
        attacker's whole view.
    """
    if labels.dim() == 0:
        samples, labels = samples.unsqueeze(0), labels.view(1)
    events = samples.dim() == 5
    data = LabelledData(samples, labels, spec.num_classes)
    n = len(labels)
    batch = batch_size or n
    steps = [np.arange(s * batch, s * batch + batch) % n for s in range(local_steps)]
    model = build_model(spec, seed=model_seed)
    sent = {k: v.detach().clone() for k, v in model.state_dict().items()}
    train_local(model, data, steps, lr)
    returned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return ObservedUpdate(spec, sent, returned, mode, lr, local_steps, batch, n,
                          modality="events" if events else "image")
