"""Checks that need more than the config itself: the data, the disk, the machine's memory.

``RunConfig`` checks every value on its own; these checks need the loaded
dataset (how many classes it has, its input shape), the file system (can the
output folder be made) or the machine (would the SNN's activations fit in
memory). ``fedsnn-run`` calls ``preflight`` before a SuperLink starts and the
ServerApp calls it again before any client trains, so plain ``flwr run`` users
get the same one-line errors.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from fedsnn.errors import RunConfigError
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import dataset_for, model_spec
from fedsnn.task.data import Split
from fedsnn.task.models import ModelSpec, build_model

# Activations the autograd graph keeps per neuron and timestep during an SNN
# backward pass: the input current, the membrane potential and the spike (float32).
SAVED_PER_ACTIVATION = 3
BYTES_PER_FLOAT = 4


def preflight(cfg: RunConfig) -> Split:
    """Every check that needs the data, the disk or the machine; returns the loaded data.

    Raises ``RunConfigError`` (key, value, what is valid) or ``DataNotFoundError``.
    """
    data = dataset_for(cfg)
    cfg.check_classes(data.test.num_classes)
    check_output_dir(cfg.output_dir)
    check_memory(cfg, model_spec(cfg, data.test))
    return data


def check_output_dir(output_dir: str) -> None:
    """The output folder can be created and written to (it is created if missing)."""
    path = Path(output_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise RunConfigError("output-dir", output_dir,
                             f"a folder that can be created and written ({exc.strerror or exc})") from None


def activations_per_sample(spec: ModelSpec) -> int:
    """Numbers every layer outputs for one sample and one timestep (forward hooks, T=1)."""
    one_step = ModelSpec(spec.name, spec.input_shape, spec.num_classes, spec.init, 1, spec.neuron, spec.surrogate)
    model = build_model(one_step)
    counted: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: counted.append(out.numel() if torch.is_tensor(out) else 0))
             for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(torch.zeros(1, *spec.input_shape))
    for hook in hooks:
        hook.remove()
    return sum(counted)


def memory_estimate_bytes(cfg: RunConfig, spec: ModelSpec) -> int:
    """A lower bound on what one training batch (or one attacked batch) holds for backward.

    bytes = samples x T x activations per sample and step x 3 saved tensors x 4 bytes;
    the attack's double backward holds about twice that for its batch.
    """
    per_step = activations_per_sample(spec) * SAVED_PER_ACTIVATION * BYTES_PER_FLOAT
    steps = spec.timesteps if spec.name == "snn-lenet" else 1
    training = cfg.batch_size * steps * per_step
    attacked = (cfg.attack_samples or cfg.batch_size) * steps * per_step * 2 if cfg.attack_names else 0
    return max(training, attacked)


def machine_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(cfg: RunConfig, spec: ModelSpec, available: int | None = None) -> None:
    """Stop SNN settings whose activations alone would not fit in the machine's memory."""
    available = machine_memory_bytes() if available is None else available
    needed = memory_estimate_bytes(cfg, spec)
    if needed > available:
        key, value = ("timesteps", cfg.timesteps) if spec.name == "snn-lenet" else ("batch-size", cfg.batch_size)
        raise RunConfigError(key, value, (
            f"settings whose memory estimate fits this machine: {needed / 2**30:.1f} GiB needed "
            f"(batch-size {cfg.batch_size}, attack-samples {cfg.attack_samples}, timesteps {cfg.timesteps}) "
            f"> {available / 2**30:.1f} GiB; lower timesteps, batch-size or attack-samples"))

