"""Flower ServerApp: validate the config, open the run folder, run the federation.

Bad input stops the run here, before any client trains: RunConfig raises
ConfigError naming the key, the value and the valid choices, and loading the
dataset raises DataNotFoundError naming the files expected.
"""

from __future__ import annotations

import logging
import os
import time

import torch
from flwr.app import ArrayRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp

from fedsnn.analysis.judges import load_judge
from fedsnn.errors import TrainingFailed
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.defense import privacy_spent, public_parameters
from fedsnn.experiment.federation import global_accuracy_and_loss, initial_model, partition_report
from fedsnn.experiment.federation_records import FederationRecorder
from fedsnn.experiment.health import training_failure
from fedsnn.experiment.leakage_records import LeakageRecorder
from fedsnn.experiment.preflight import preflight
from fedsnn.experiment.run_report import write_run_report
from fedsnn.experiment.runs import read_jsonl
from fedsnn.experiment.secagg import secagg_plan
from server.black_box import invert_global_model
from server.curious import CuriousFedAvg
from server.defenses import defended_strategy
from server.secagg import CuriousSecAggFedAvg, federate_secagg

log = logging.getLogger("fedsnn")
torch.set_num_threads(1)

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    _share_flower_logging()
    cfg = RunConfig.from_mapping(context.run_config)
    preflight(cfg)  # missing data, impossible classes, memory or output folder fail here, before any training
    recorder = FederationRecorder.create(cfg, {"ray": ray_setting(), "defense": public_parameters(cfg)})
    try:
        federate(grid, cfg, recorder, context)
    finally:
        write_run_report(recorder.dir)


def federate(grid: Grid, cfg: RunConfig, recorder: FederationRecorder, context: Context | None = None) -> None:
    """Rounds of FedAvg with the curious server; raises TrainingFailed if the clients did not train."""
    node_partitions, num_partitions = discover_partitions(grid, cfg.min_nodes)
    plan = secagg_plan(cfg, num_partitions) if cfg.defense == "secagg" else None  # bad shares stop here, before training
    recorder.write_partitions(partition_report(cfg, num_partitions))

    def record_global_model(server_round: int, state: dict[str, torch.Tensor]) -> dict[str, float]:
        result = global_accuracy_and_loss(cfg, state)
        recorder.note_round(server_round, privacy_spent(cfg, server_round, num_partitions))  # epsilon so far
        recorder.record_round(server_round, result)
        if server_round in cfg.gamin_round_set():
            invert_global_model(cfg, state, server_round, recorder.dir)
        return result

    judge, judge_note = judge_for(cfg) if cfg.attack_names and cfg.judge != "none" else (None, "judge disabled")
    leakage = LeakageRecorder(cfg, recorder.dir, num_partitions, judge, judge_note)
    if plan is not None:  # Flower's SecAgg+ drives a legacy strategy (server/secagg.py)
        context = context or Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={})
        strategy = CuriousSecAggFedAvg(cfg, node_partitions, recorder, leakage, initial_model(cfg).state_dict(),
                                       record_global_model)
        final = federate_secagg(grid, context, strategy, plan)
    else:
        strategy = defended_strategy(cfg, CuriousFedAvg(cfg, node_partitions, recorder, leakage), num_partitions)
        result = strategy.start(
            grid=grid, initial_arrays=ArrayRecord(initial_model(cfg).state_dict()), num_rounds=cfg.num_rounds,
            evaluate_fn=lambda rnd, arrays: MetricRecord(record_global_model(rnd, arrays.to_torch_state_dict())),
        )
        final = result.arrays.to_torch_state_dict()
    torch.save(final, recorder.dir / "global_model.pt")
    verdict = training_failure(read_jsonl(recorder.dir / "metrics.jsonl"))
    if verdict:
        log.error("fedsnn run failed: %s", verdict)
        raise TrainingFailed(verdict)
    log.info("fedsnn run finished: %s", recorder.dir.resolve())


def ray_setting() -> dict[str, str]:
    """Which Ray the simulation uses: a private local one, or the cluster RAY_ADDRESS names
    (the ServerApp inherits the SuperLink's environment)."""
    address = os.environ.get("RAY_ADDRESS", "")
    if address and address != "local":
        log.info("Ray: joining the cluster at RAY_ADDRESS=%s", address)
        return {"address": address, "mode": "cluster"}
    return {"address": address or None, "mode": "private local (127.0.0.1)" if address == "local" else "default"}


def judge_for(cfg: RunConfig):
    """The judge model for attack success rate, trained once and cached; (None, why) if unavailable."""
    try:
        judge = load_judge(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.timesteps, cfg.seed,
                           train_if_missing=cfg.judge == "auto")
        return judge, "" if judge is not None else "no cached judge: ASR not measured (judge='auto' trains one)"
    except Exception as exc:  # noqa: BLE001 - no judge means no ASR, not a failed run
        log.warning("no judge model for %s (%s): ASR will not be measured", cfg.dataset, exc)
        return None, f"no judge: {type(exc).__name__}: {exc}"


def _share_flower_logging() -> None:
    """Send fedsnn's log lines where Flower's go (the streamed run log)."""
    fedsnn_log = logging.getLogger("fedsnn")
    fedsnn_log.setLevel(logging.INFO)
    for handler in logging.getLogger("flwr").handlers:
        if handler not in fedsnn_log.handlers:
            fedsnn_log.addHandler(handler)


def discover_partitions(grid: Grid, min_nodes: int, wait_s: float = 300.0) -> tuple[dict[int, int], int]:
    """Ask every connected client which partition it holds: {node id: partition id}."""
    deadline = time.monotonic() + wait_s
    while len(node_ids := list(grid.get_node_ids())) < min_nodes:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(node_ids)} of min-nodes={min_nodes} clients connected after {wait_s:.0f} s")
        time.sleep(0.5)
    messages = [Message(content=RecordDict(), message_type=MessageType.QUERY, dst_node_id=n) for n in node_ids]
    mapping, num_partitions = {}, 0
    for reply in grid.send_and_receive(messages, timeout=wait_s):
        if reply.has_error():
            log.warning("client %s did not say its partition: %s", reply.metadata.src_node_id, reply.error.reason)
            continue
        info = reply.content["info"]
        mapping[reply.metadata.src_node_id] = int(info["partition-id"])
        num_partitions = int(info["num-partitions"])
    if not mapping:
        raise RuntimeError("no client answered the partition query")
    return mapping, num_partitions
