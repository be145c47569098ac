"""What the studies share: which samples, how one attack on one sample is scored, pixels in records.

The victim's update itself is built by ``fedsnn.experiment.simulated_client``
(the federation's floor), so every study attacks the same kind of client.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np
import torch

from attacks import Reconstruction
from attacks.core import AuxiliaryData
from fedsnn.analysis.metrics import Judge, score_batch
from fedsnn.analysis.scoring import CONTROLS, GAIN_METRICS, score_controls


def sample_indices(dataset: str, size: int, count: int, seed: int) -> list[int]:
    """The first ``count`` of a seeded permutation of range(size): growing ``count`` keeps earlier picks."""
    rng = np.random.default_rng([seed, zlib.crc32(dataset.encode())])
    return [int(i) for i in rng.permutation(size)[:count]]


def score(rec: Reconstruction, x: torch.Tensor, y: torch.Tensor, judge: Judge | None,
          aux: AuxiliaryData | None = None) -> dict[str, object]:
    """The evaluator on one sample (x [C, H, W] or [T, C, H, W], scalar y): the record's score fields.

    A failed attack (no samples) is scored as a uniform grey 0.5 input: what an
    attacker holds before it starts, so that failures count against the cell.
    With ``aux`` the controls (``fedsnn.analysis.scoring.CONTROLS``) are
    scored the same way, as ``control_<name>`` (a dict of the same fields),
    and the gains over the label-only guess as ``gain_<metric>``.
    """
    samples = rec.samples if rec.samples.numel() else torch.full_like(x, 0.5).unsqueeze(0)
    labels = rec.labels if rec.labels.numel() else torch.tensor([-1])
    original, truth = x.unsqueeze(0), y.view(1)
    record = score_batch(samples[:1].float(), original, truth, labels[:1], judge, match=False)[0]
    out: dict[str, object] = {**record.as_dict(), "inferred_label": int(labels[0])}
    if aux is not None:
        controls = score_controls(original, truth, aux, labels[:1], rec.initial, judge)
        for name in CONTROLS:
            if name in controls:
                out[f"control_{name}"] = controls[name][0].as_dict()
        for metric in GAIN_METRICS:
            out[f"gain_{metric}"] = getattr(record, metric) - getattr(controls["label_only"][0], metric)
    return out


def encode_pixels(sample: torch.Tensor) -> str:
    """One reconstruction [C, H, W] in [0, 1] as base64 uint8 bytes, for grids in records."""
    return base64.b64encode((sample.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()).decode()


def decode_pixels(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of ``encode_pixels``: float [C, H, W] in [0, 1]."""
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(shape) / 255.0
