"""Flower ClientApp: thin handlers over fedsnn.experiment.federation.

A client answers two kinds of message: ``query`` (which partition it holds,
so the server can sample clients reproducibly) and ``train`` (local training
from the global weights). Its reply carries what a real client sends: the
weights, num-examples, training metrics and declared metadata (partition id,
batch size, local steps, lr, mode). Never its data.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat

from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.federation import client_train, initial_model
from clients.defense_mods import defense_mod

torch.set_num_threads(1)  # one intra-op thread per simulated client (see attacks.batched.parallel)

app = ClientApp()


def _partition(context: Context) -> tuple[int, int]:
    return int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])


def check_finite(state: dict[str, torch.Tensor], lr: float) -> None:
    """A client whose training diverged fails its reply instead of poisoning the average."""
    bad = [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise FloatingPointError(f"local training diverged: non-finite weights in {', '.join(bad)} (lr={lr})")


@app.query()
def query(msg: Message, context: Context) -> Message:
    partition_id, num_partitions = _partition(context)
    info = ConfigRecord({"partition-id": partition_id, "num-partitions": num_partitions})
    return Message(content=RecordDict({"info": info}), reply_to=msg)


@app.train(mods=[defense_mod])  # the client's half of the run's defense (clients/defense_mods.py)
def train(msg: Message, context: Context) -> Message:
    if LEGACY_FITINS in msg.content.array_records:  # secagg: SecAgg+ carries legacy FitIns / FitRes records
        return train_legacy(msg, context)
    cfg = RunConfig.from_mapping(context.run_config)
    partition_id, num_partitions = _partition(context)
    global_state = msg.content["arrays"].to_torch_state_dict()
    server_round = int(msg.content["config"]["server-round"])
    update = client_train(cfg, global_state, partition_id, num_partitions, server_round)
    check_finite(update.state, cfg.lr)
    content = RecordDict({
        "arrays": ArrayRecord(update.state),
        "metrics": MetricRecord({"num-examples": update.num_examples, **update.metrics}),
        "declared": ConfigRecord(update.declared),
    })
    return Message(content=content, reply_to=msg)


LEGACY_FITINS = "fitins.parameters"


def train_legacy(msg: Message, context: Context) -> Message:
    """The same training, for Flower's SecAgg+ (``secaggplus_mod`` reads a legacy ``FitRes``).

    Weights travel as an ordered list (the model's state-dict order, which both sides
    build from the run config); the declared metadata goes into the FitRes metrics,
    which SecAgg+ passes to the server in the clear, like num-examples.
    """
    cfg = RunConfig.from_mapping(context.run_config)
    partition_id, num_partitions = _partition(context)
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    keys = list(initial_model(cfg).state_dict())
    global_state = {k: torch.from_numpy(np.array(a)) for k, a in zip(keys, parameters_to_ndarrays(fitins.parameters), strict=True)}
    update = client_train(cfg, global_state, partition_id, num_partitions, int(fitins.config["server-round"]))
    check_finite(update.state, cfg.lr)
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([update.state[k].numpy() for k in keys]),
                    update.num_examples, {**update.metrics, **update.declared})
    return Message(content=compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)
