"""What each defense of a run publishes and what privacy it has spent, from RunConfig.

The curious server knows a defense's public parameters (a real server
configures them, or reads them from the protocol): ``public_parameters``.
Every run records the epsilon spent after each round (``privacy_spent``),
a pure function of the config and the round, so the server computes it
without asking the clients:

- dp-client-fixed / dp-server-fixed: client-level DP, one Gaussian release
  per round with noise multiplier sigma; no amplification by client sampling
  (the only accounting Flower's own wrappers support), so epsilon after r
  rounds is the RDP epsilon of r releases at sample rate 1.
- local-dp: each client's update is clipped to C and noised by LocalDpMod
  with (ldp-epsilon, dp-delta) per round; rounds compose through the RDP
  accountant at noise multiplier sqrt(2 ln(1.25/delta)) / epsilon, and the
  largest participation count over clients is reported.
- dp-sgd: sample-level DP; each local step is a sampled Gaussian mechanism at
  sample rate batch / shard size (Opacus' accounting, which assumes Poisson
  sampling; our batches are shuffled fixed-size, as in most DP-SGD code); the
  worst client (most steps, highest rate) is reported.
- none, topk, quantize, secagg: no DP guarantee; epsilon is recorded as None.
"""

from __future__ import annotations

from typing import Any

from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import local_plan, sample_partitions, shards
from fedsnn.experiment.secagg import secagg_parameters
from fedsnn.task.defenses import gaussian_mechanism_noise_multiplier, rdp_epsilon
from fedsnn.task.training import local_batches

DP_DEFENSES = ("dp-client-fixed", "dp-server-fixed", "local-dp", "dp-sgd")
CENTRAL_DP = ("dp-client-fixed", "dp-server-fixed")


def public_parameters(cfg: RunConfig) -> dict[str, Any]:
    """The defense's settings a server knows: recorded with the run and usable by the attacker."""
    by_defense = {
        "none": {},
        "dp-client-fixed": {"clip-norm": cfg.clip_norm, "noise-multiplier": cfg.noise_multiplier},
        "dp-server-fixed": {"clip-norm": cfg.clip_norm, "noise-multiplier": cfg.noise_multiplier},
        "local-dp": {"clip-norm": cfg.clip_norm, "sensitivity": cfg.clip_norm, "ldp-epsilon": cfg.ldp_epsilon,
                     "dp-delta": cfg.dp_delta},
        "dp-sgd": {"clip-norm": cfg.clip_norm, "noise-multiplier": cfg.noise_multiplier},
        "topk": {"topk-fraction": cfg.topk_fraction},
        "quantize": {"quant-bits": cfg.quant_bits},
        "secagg": secagg_parameters(cfg),
    }
    return {"defense": cfg.defense, **by_defense[cfg.defense]}


def participations(cfg: RunConfig, server_round: int, num_partitions: int) -> dict[int, int]:
    """{partition: rounds 1..server_round it trained in} (the seeded sampling both sides use)."""
    counts = dict.fromkeys(range(num_partitions), 0)
    for r in range(1, server_round + 1):
        for p in sample_partitions(cfg, r, list(range(num_partitions))):
            counts[p] += 1
    return counts


def privacy_spent(cfg: RunConfig, server_round: int, num_partitions: int) -> dict[str, Any]:
    """{"epsilon": spent after ``server_round`` rounds or None, "delta", "dp-unit"}: the worst client's."""
    if cfg.defense not in DP_DEFENSES:
        return {"epsilon": None, "delta": None, "dp-unit": None}
    counts = participations(cfg, server_round, num_partitions)
    if cfg.defense in CENTRAL_DP:
        epsilon, unit = rdp_epsilon(cfg.noise_multiplier, 1.0, server_round, cfg.dp_delta), "client"
    elif cfg.defense == "local-dp":
        sigma = gaussian_mechanism_noise_multiplier(cfg.ldp_epsilon, cfg.dp_delta)
        epsilon, unit = rdp_epsilon(sigma, 1.0, max(counts.values()), cfg.dp_delta), "client"
    else:
        parts, plan = shards(cfg, num_partitions), local_plan(cfg)
        epsilon, unit = 0.0, "sample"
        for p, rounds in counts.items():
            steps = len(local_batches(parts[p], plan, cfg.seed, p, 1)) * rounds
            rate = min(1.0, min(cfg.batch_size, len(parts[p])) / len(parts[p]))
            epsilon = max(epsilon, rdp_epsilon(cfg.noise_multiplier, rate, steps, cfg.dp_delta))
    return {"epsilon": epsilon, "delta": cfg.dp_delta, "dp-unit": unit}
