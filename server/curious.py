"""The curious server: FedAvg that attacks every update it receives, passively.

Each attacked round it keeps the global arrays it sent, turns each chosen
client's reply into an ``ObservedUpdate`` (what a real server sees: weights
sent, weights returned, declared metadata) and runs the configured attacks on
copies. Then it aggregates with FedAvg's own ``aggregate_train``, untouched:
the global model is bit-identical with attacks on and off (tested).

Scoring is not done here: reconstructions go to ``LeakageRecorder``, the
evaluator, which re-derives the ground truth on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from attacks import GROUPED, NEEDS_AUXILIARY, AttackConfig, ObservedUpdate, Reconstruction, reconstruct_many
from attacks.batched import default_workers
from fedsnn.experiment.auxiliary import auxiliary_data, check_disjoint
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import dataset_for, model_spec
from fedsnn.experiment.leakage_records import LeakageRecorder
from fedsnn.experiment.settings import attack_config
from server.strategy import PartitionSampledFedAvg

log = logging.getLogger("fedsnn")


def observe(cfg: RunConfig, sent: dict, reply: Message) -> ObservedUpdate:
    """What the server sees of one reply. Declared metadata is the client's word."""
    declared = reply.content["declared"]
    return ObservedUpdate(
        spec=model_spec(cfg, dataset_for(cfg).test),
        global_weights=sent,
        client_weights=reply.content["arrays"].to_torch_state_dict(),
        mode=str(declared["mode"]), lr=float(declared["lr"]), local_steps=int(declared["local-steps"]),
        batch_size=int(declared["batch-size"]), num_examples=int(reply.content["metrics"]["num-examples"]),
        modality="events" if dataset_for(cfg).test.is_event else "image",
    )


def attack_victims(name: str, observed: list[ObservedUpdate], config: AttackConfig, workers: int) -> list[Reconstruction]:
    """All victims of one attack at once; if the batch itself breaks, each is recorded as failed.

    Grouped attacks (``attacks.GROUPED``: the learned decoder, trained once for the
    round's global weights and shared by every victim; IG's stacked victims) run
    through their own group entry in this process; the rest through the batched
    engine. Only the attacks that declare auxiliary data receive it.
    """
    start = time.perf_counter()
    try:
        if name not in NEEDS_AUXILIARY and config is not None and config.auxiliary is not None:
            config = replace(config, auxiliary=None)
        if name in GROUPED:
            return GROUPED[name](observed, config)
        return reconstruct_many(observed, config, name, workers=workers)
    except Exception as exc:  # noqa: BLE001 - a failed attack is recorded, never crashes the round
        return [Reconstruction.failed(f"{type(exc).__name__}: {exc}", time.perf_counter() - start) for _ in observed]


def declared_auxiliary(cfg: RunConfig, num_partitions: int):
    """The attacker's auxiliary data when a configured attack needs it (the test split,
    checked disjoint from every client's shard before any round), else None."""
    if not set(cfg.attack_names) & NEEDS_AUXILIARY:
        return None
    aux = auxiliary_data(cfg)
    check_disjoint(aux, cfg, num_partitions)
    log.info("attacker's auxiliary data: %s", aux.source)
    return aux


def attack_and_record(cfg: RunConfig, leakage: LeakageRecorder, attack_cfg: AttackConfig, server_round: int,
                      observed: dict[int | tuple[int, ...], ObservedUpdate]) -> None:
    """Run every configured attack on the round's observed updates (one batched call per
    attack, spread over worker processes when there are enough victims to share) and hand
    each reconstruction to the evaluator, which scores it beside its controls (the label-only
    guess among them); ``observed`` maps a victim (a partition, or a tuple of partitions for a
    SecAgg aggregate) to what the server saw of it."""
    workers = min(default_workers(), max(1, len(observed) // 2))
    for name in cfg.attack_names:
        for victim, result in zip(observed, attack_victims(name, list(observed.values()), attack_cfg, workers)):
            leakage.record(server_round, victim, name, result)
    leakage.summarise_round(server_round)


class CuriousFedAvg(PartitionSampledFedAvg):
    def __init__(self, cfg: RunConfig, node_partitions: dict[int, int], recorder, leakage: LeakageRecorder) -> None:
        super().__init__(cfg, node_partitions, recorder)
        self.leakage, self.attack_cfg = leakage, attack_config(cfg, declared_auxiliary(cfg, leakage.num_partitions))
        self._sent: dict[int, ArrayRecord] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        if server_round in self.cfg.attacked_rounds() and self.cfg.attack_names:
            self._sent[server_round] = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        replies = list(replies)
        sent = self._sent.pop(server_round, None)
        if sent is not None:
            self.attack_round(server_round, sent.to_torch_state_dict(), replies)
        return super().aggregate_train(server_round, replies)

    def attack_round(self, server_round: int, sent: dict, replies: list[Message]) -> None:
        """Every chosen victim of the round, each attack in one batched call (the fast
        path, ``attacks.reconstruct_many``), spread over worker processes when
        there are enough victims to share."""
        ok = {self.node_partitions[m.metadata.src_node_id]: m for m in replies if not m.has_error()}
        observed: dict[int, ObservedUpdate] = {}
        for partition_id in self.victims(server_round, sorted(ok)):
            try:
                observed[partition_id] = observe(self.cfg, sent, ok[partition_id])
            except Exception as exc:  # noqa: BLE001 - a malformed reply is recorded, not fatal
                for name in self.cfg.attack_names:
                    self.leakage.record(server_round, partition_id, name, Reconstruction.failed(f"bad reply: {exc}"))
        attack_and_record(self.cfg, self.leakage, self.attack_cfg, server_round, observed)

    def victims(self, server_round: int, partitions: list[int]) -> list[int]:
        """Clients attacked this round: all that trained, or a seeded choice of them."""
        k = self.cfg.attack_clients
        if k == 0 or k >= len(partitions):
            return partitions
        rng = np.random.default_rng([self.cfg.seed, server_round, 11])
        return sorted(int(p) for p in rng.choice(partitions, size=k, replace=False))
