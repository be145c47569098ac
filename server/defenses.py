"""The server's half of each defense: Flower's central-DP strategy wrappers around the curious FedAvg.

``defended_strategy`` wraps ``CuriousFedAvg`` for the run's defense:

- dp-client-fixed: ``DifferentialPrivacyClientSideFixedClipping`` sends the
  clipping norm, the clients' ``fixedclipping_mod`` clips, the wrapper adds
  N(0, (sigma C / n)^2) to the average. The curious FedAvg inside sees each
  clipped update, before the noise: exactly what a real server receives.
- dp-server-fixed: ``DifferentialPrivacyServerSideFixedClipping`` clips each
  reply on the server, then averages and adds the noise. The curious FedAvg
  inside sees the clipped updates; note that a curious operator of this
  server could read them raw (server-side DP protects the released model,
  not the clients from the server).
- every other defense acts on the client (clients/defense_mods.py): the
  strategy is unchanged.

Flower adds its noise from NumPy's global generator; ``_add_noise_to_aggregated_arrays``
(the one place the wrappers draw) is preceded by seeding it from (seed, round),
so the released model is reproducible and bit-identical with attacks on and off.
Flower's own privacy accountant cannot be used here: it requires the wrapped
strategy's ``aggregate_train`` to be FedAvg's (ours attacks before aggregating)
and Google's dp-accounting package; epsilon comes from Opacus' RDP accountant
instead (``fedsnn.experiment.defense.privacy_spent``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, Message
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)

from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import sample_partitions


class _SeededNoise:
    """Mixin for Flower's fixed-clipping wrappers: seed NumPy just before the noise is drawn."""

    seed: int = 0
    _round: int = 0

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        self._round = server_round
        return super().aggregate_train(server_round, replies)

    def _add_noise_to_aggregated_arrays(self, aggregated_arrays: ArrayRecord) -> ArrayRecord:
        np.random.seed([self.seed, self._round, 17])
        return super()._add_noise_to_aggregated_arrays(aggregated_arrays)


class SeededClientSideFixedClipping(_SeededNoise, DifferentialPrivacyClientSideFixedClipping):
    pass


class SeededServerSideFixedClipping(_SeededNoise, DifferentialPrivacyServerSideFixedClipping):
    pass


WRAPPERS = {"dp-client-fixed": SeededClientSideFixedClipping, "dp-server-fixed": SeededServerSideFixedClipping}


def defended_strategy(cfg: RunConfig, strategy: Strategy, num_partitions: int) -> Strategy:
    """``strategy`` wrapped by Flower's central-DP wrapper of the run's defense, or unchanged."""
    if cfg.defense not in WRAPPERS:
        return strategy
    num_sampled = len(sample_partitions(cfg, 1, list(range(num_partitions))))
    wrapper = WRAPPERS[cfg.defense](strategy, cfg.noise_multiplier, cfg.clip_norm, num_sampled)
    wrapper.seed = cfg.seed
    return wrapper
