"""Secure aggregation (SecAgg+): its settings, checked against the round's fleet, and what the server sees.

Flower's ``SecAggPlusWorkflow`` (server) and ``secaggplus_mod`` (client) wire
the protocol (server/secagg.py, clients/defense_mods.py). Each client uploads
``[w, w * weights]`` quantised and masked, with w = num-examples / max-weight;
the server can unmask only the sum, so after dequantisation it holds the
example-weighted average of the round's weights and nothing per client
(num-examples and the training metrics still travel in the clear, as in
Flower). The curious server therefore attacks one update: the aggregate,
read as a single client that trained on every sample of the round
(``aggregate_observation``); the evaluator scores it against the union of
the clients' batches (``fedsnn.experiment.ground_truth.round_ground_truth``).

Quantisation: weight x w is clipped to [-clipping-range, clipping-range] and
stochastically rounded onto quantization-range levels, so the average the
server releases differs from plain FedAvg's by up to
2 clipping-range / (quantization-range sum(w)) per entry (unbiased).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from attacks.core import ObservedUpdate
from fedsnn.errors import RunConfigError
from fedsnn.experiment.config import SECAGG_MODULUS, RunConfig
from fedsnn.experiment.federation import dataset_for, model_spec, sample_partitions


@dataclass(frozen=True)
class SecAggPlan:
    """The protocol's sizes for a round of ``clients`` clients.

    ``workflow_args`` are what ``SecAggPlusWorkflow(num_shares, reconstruction_threshold)``
    must be given to run exactly ``num_shares`` and ``threshold``: Flower reads an
    int share count only above 2 and an int threshold only below the share count,
    and reads floats as fractions (1.0 = all), which reach the other cases exactly.
    """

    clients: int
    num_shares: int
    threshold: int

    @property
    def workflow_args(self) -> tuple[int | float, int | float]:
        shares: int | float = 1.0 if self.num_shares == self.clients else self.num_shares
        threshold: int | float = 1.0 if self.threshold == self.num_shares else self.threshold
        return shares, threshold


def secagg_plan(cfg: RunConfig, num_partitions: int) -> SecAggPlan:
    """Check num-shares, reconstruction-threshold and quantization-range against the clients of a
    round; raises ``RunConfigError`` (key, value, valid range) before any client trains."""
    clients = len(sample_partitions(cfg, 1, list(range(num_partitions))))  # the same count every round
    if clients < 2:
        raise RunConfigError("fraction-train", cfg.fraction_train,
                             f"a fraction that samples at least 2 of the {num_partitions} clients (SecAgg+ sums 2 or more)")
    shares = cfg.num_shares or clients
    if shares > clients:
        raise RunConfigError("num-shares", cfg.num_shares, f"0 or an integer from 3 to {clients} (clients per round)")
    if shares < clients and (shares < 3 or shares % 2 == 0):
        raise RunConfigError("num-shares", cfg.num_shares,
                             f"0, {clients} (clients per round) or an odd integer from 3 to {clients - 1} "
                             "(SecAgg+ neighbourhoods are symmetric rings)")
    if cfg.reconstruction_threshold > shares:
        raise RunConfigError("reconstruction-threshold", cfg.reconstruction_threshold,
                             f"an integer from 2 to {shares} (the shares per client)")
    if clients * cfg.quantization_range > SECAGG_MODULUS:
        raise RunConfigError("quantization-range", cfg.quantization_range,
                             f"an integer from 2 to {SECAGG_MODULUS // clients} ({clients} clients' sum must fit 2^32)")
    return SecAggPlan(clients, shares, cfg.reconstruction_threshold)


def secagg_parameters(cfg: RunConfig) -> dict[str, float | int]:
    """The protocol's public settings, recorded with the run."""
    return {"num-shares": cfg.num_shares, "reconstruction-threshold": cfg.reconstruction_threshold,
            "clipping-range": cfg.clipping_range, "quantization-range": cfg.quantization_range,
            "max-weight": cfg.max_weight, "modulus-range": SECAGG_MODULUS}


def quantization_step(cfg: RunConfig, num_examples: Sequence[int]) -> float:
    """Width of one quantisation level on the released average (2 r / (Q sum w))."""
    total_weight = sum(round(n / cfg.max_weight * cfg.quantization_range) for n in num_examples) / cfg.quantization_range
    return 2 * cfg.clipping_range / cfg.quantization_range / total_weight


def clipped_entries(cfg: RunConfig, state: Mapping[str, torch.Tensor], num_examples: int) -> int:
    """Entries of a client's weights that SecAgg+ will clip (|weight x w| > clipping-range)."""
    ratio = round(num_examples / cfg.max_weight * cfg.quantization_range) / cfg.quantization_range
    return int(sum(int((v.detach().double().abs() * ratio > cfg.clipping_range).sum()) for v in state.values()))


def aggregate_observation(cfg: RunConfig, sent: Mapping[str, torch.Tensor], aggregate: Mapping[str, torch.Tensor],
                          declared: Sequence[Mapping[str, object]], num_examples: Sequence[int]) -> ObservedUpdate:
    """The round's aggregate as one update: the attacker's whole view under SecAgg+.

    Every client declares the same mode and lr (one run config); the aggregate is read
    as one client holding all ``sum(num_examples)`` samples: fedsgd = one step on a batch
    of them all (exact: the example-weighted average of batch gradients is the gradient
    of their union); fedavg = the example-weighted mean of the declared local steps.
    """
    modes = {str(d["mode"]) for d in declared}
    lrs = {float(d["lr"]) for d in declared}
    if len(modes) != 1 or len(lrs) != 1:
        raise ValueError(f"clients declared different modes {sorted(modes)} or learning rates {sorted(lrs)}")
    total = int(sum(num_examples))
    steps = round(sum(int(d["local-steps"]) * n for d, n in zip(declared, num_examples)) / total)
    test = dataset_for(cfg).test
    return ObservedUpdate(
        spec=model_spec(cfg, test), global_weights=dict(sent), client_weights=dict(aggregate),
        mode=modes.pop(), lr=lrs.pop(), local_steps=max(1, steps), batch_size=total, num_examples=total,
        modality="events" if test.is_event else "image",
    )
