"""defense='secagg': Flower's SecAgg+ with a curious legacy FedAvg that attacks the only thing it sees.

Flower 1.41's ``SecAggPlusWorkflow`` drives the *legacy* strategy interface
inside a ``LegacyContext`` (``configure_fit``; ``aggregate_fit`` from its unmask
stage), so this path runs ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))``
with ``CuriousSecAggFedAvg``, a ``flwr.server.strategy.FedAvg`` subclass.
The unmask stage (``secaggplus_workflow.py``, ``unmask_stage``) sets every
result's ``fitres.parameters`` to the one unmasked, dequantised average and
keeps each client's ``num_examples`` and metrics; that average, the global
weights it sent, and the declared metadata are the attacker's whole view:
one update whose victims are every sample of the round
(``fedsnn.experiment.secagg.aggregate_observation``).

Passive: the released model is SecAgg+'s average itself, cast back to the
model's dtypes (not re-averaged, so the order replies arrive in cannot move
a bit); the attack runs on copies before it is returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from flwr.app import Context
from flwr.common import FitIns, FitRes, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
from flwr.serverapp import Grid

from attacks import ObservedUpdate, Reconstruction
from fedsnn.errors import TrainingFailed
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import sample_partitions
from fedsnn.experiment.federation_records import FederationRecorder
from fedsnn.experiment.health import training_failure
from fedsnn.experiment.leakage_records import LeakageRecorder
from fedsnn.experiment.secagg import SecAggPlan, aggregate_observation
from fedsnn.experiment.settings import attack_config
from server.curious import attack_and_record, declared_auxiliary

log = logging.getLogger("fedsnn")
Evaluate = Callable[[int, dict[str, torch.Tensor]], dict[str, float]]


class CuriousSecAggFedAvg(FedAvg):
    """Legacy FedAvg over seeded partition samples; attacks SecAgg+'s aggregate, passively."""

    def __init__(self, cfg: RunConfig, node_partitions: dict[int, int], recorder: FederationRecorder,
                 leakage: LeakageRecorder, initial_state: dict[str, torch.Tensor], evaluate: Evaluate) -> None:
        self.cfg, self.node_partitions, self.recorder, self.leakage = cfg, node_partitions, recorder, leakage
        self.template = {k: v.detach().clone() for k, v in initial_state.items()}  # keys, order, dtypes
        self.attack_cfg = attack_config(cfg, declared_auxiliary(cfg, leakage.num_partitions))
        self._sent: dict[int, dict[str, torch.Tensor]] = {}
        self._asked: dict[int, list[int]] = {}
        super().__init__(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=2, min_evaluate_clients=0,
                         min_available_clients=cfg.min_nodes,
                         evaluate_fn=lambda rnd, ndarrays, _config: self._evaluate(evaluate, rnd, ndarrays),
                         initial_parameters=self.to_parameters(initial_state))

    def to_state(self, parameters: Parameters | list[np.ndarray]) -> dict[str, torch.Tensor]:
        arrays = parameters_to_ndarrays(parameters) if isinstance(parameters, Parameters) else parameters
        return {k: torch.from_numpy(np.array(a)).to(self.template[k].dtype)
                for (k, a) in zip(self.template, arrays, strict=True)}

    @staticmethod
    def to_parameters(state: dict[str, torch.Tensor]) -> Parameters:
        return ndarrays_to_parameters([v.detach().cpu().numpy() for v in state.values()])

    def _evaluate(self, evaluate: Evaluate, server_round: int, ndarrays: list[np.ndarray]) -> tuple[float, dict[str, Scalar]]:
        result = evaluate(server_round, self.to_state(ndarrays))
        return float(result["loss"]), {"accuracy": float(result["accuracy"])}

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        chosen = set(sample_partitions(self.cfg, server_round, list(self.node_partitions.values())))
        proxies = {proxy.node_id: proxy for proxy in client_manager.all().values()}
        nodes = sorted(n for n, p in self.node_partitions.items() if p in chosen and n in proxies)
        self.recorder.note_round(server_round, {"sampled-partitions": sorted(chosen)})
        log.info("round %d: training partitions %s (SecAgg+)", server_round, sorted(chosen))
        if server_round in self.cfg.attacked_rounds() and self.cfg.attack_names:
            self._sent[server_round] = self.to_state(parameters)
        self._asked[server_round] = nodes
        fit_ins = FitIns(parameters, {"server-round": server_round})
        return [(proxies[n], fit_ins) for n in nodes]

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: list[tuple[ClientProxy, FitRes] | BaseException]) -> tuple[Parameters | None, dict[str, Scalar]]:
        ok = {self.node_partitions[proxy.node_id]: res for proxy, res in results}
        missing = sorted(self.node_partitions[n] for n in self._asked.pop(server_round, []) if self.node_partitions[n] not in ok)
        reason = "; ".join(str(f) for f in failures) or "no reply"
        self.recorder.note_round(server_round, {
            "clients-ok": len(ok), "clients-failed": [{"partition": p, "reason": reason} for p in missing],
            "train-loss": _mean([float(res.metrics["train-loss"]) for res in ok.values()]),
            "secagg-clipped-entries": sum(int(res.metrics.get("secagg-clipped-entries", 0)) for res in ok.values()),
        })
        sent = self._sent.pop(server_round, None)
        if not ok:
            line = self.recorder.record_round(server_round, {"accuracy": None, "loss": None})
            raise TrainingFailed(training_failure([line]))
        aggregate = self.to_state(results[0][1].parameters)  # SecAgg+ gave every result the same unmasked average
        if sent is not None:
            self.attack_aggregate(server_round, sent, aggregate, ok)
        return self.to_parameters(aggregate), {"clients": len(ok)}

    def attack_aggregate(self, server_round: int, sent: dict, aggregate: dict, ok: dict[int, FitRes]) -> None:
        victim = tuple(sorted(ok))
        observed: dict[tuple[int, ...], ObservedUpdate] = {}
        try:
            observed[victim] = aggregate_observation(self.cfg, sent, {k: v.clone() for k, v in aggregate.items()},
                                                     [res.metrics for res in ok.values()],
                                                     [res.num_examples for res in ok.values()])
        except Exception as exc:  # noqa: BLE001 - an unreadable aggregate is recorded, not fatal
            for name in self.cfg.attack_names:
                self.leakage.record(server_round, victim, name, Reconstruction.failed(f"bad aggregate: {exc}"))
        attack_and_record(self.cfg, self.leakage, self.attack_cfg, server_round, observed)


def federate_secagg(grid: Grid, context: Context, strategy: CuriousSecAggFedAvg, plan: SecAggPlan) -> dict[str, torch.Tensor]:
    """Every round through Flower's SecAgg+ workflow; returns the final global weights."""
    num_shares, threshold = plan.workflow_args
    log.info("SecAgg+: %d clients per round, %d shares each, reconstruction threshold %d",
             plan.clients, plan.num_shares, plan.threshold)
    cfg = strategy.cfg
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=cfg.num_rounds), strategy=strategy)
    workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
        num_shares, threshold, max_weight=cfg.max_weight, clipping_range=cfg.clipping_range,
        quantization_range=cfg.quantization_range))
    workflow(grid, legacy)
    final = compat.arrayrecord_to_parameters(legacy.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
    return strategy.to_state(final)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
