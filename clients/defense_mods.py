"""The client's half of each defense, as a Flower mod around ``@app.train`` (README "Defenses").

A mod sees the global arrays the server sent and the reply the ClientApp
built, and rewrites the reply before it leaves the client; so the server,
curious or not, only ever receives the defended update. One dispatching mod
reads the run config (mods are fixed when the ClientApp is built, the
defense only when a message arrives):

- dp-client-fixed: Flower's ``fixedclipping_mod`` (clips to the norm the
  server's ``DifferentialPrivacyClientSideFixedClipping`` sends);
- local-dp: Flower's ``LocalDpMod`` (clip to C, Gaussian noise for
  (ldp-epsilon, dp-delta) with sensitivity C);
- topk, quantize: the update is compressed (``fedsnn.task.defenses``) and
  the reply carries sent + compressed update;
- secagg: Flower's ``secaggplus_mod`` (SecAgg+): the train handler replies with a
  legacy FitRes, which the mod quantises, masks and uploads; the server only
  ever unmasks the sum. Before the mod quantises, the reply's metrics gain
  ``secagg-clipped-entries`` (weights the quantiser will clip) and NumPy is
  seeded, for the stochastic rounding (``flwr...quantization._stochastic_round``
  draws from NumPy's global generator);
- dp-sgd trains privately in ``client_train``; the others need nothing here.

Flower's noise (and SecAgg+'s stochastic rounding) comes from NumPy's global
generator; it is seeded from (seed, partition, round) just before LocalDpMod
or the SecAgg+ quantiser draws, so a seeded run is reproducible bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.mod import LocalDpMod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat

from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.secagg import clipped_entries
from fedsnn.task.defenses import apply_update, quantize, top_k, update_between


def defense_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Apply the run's client-side defense to a train reply."""
    cfg = RunConfig.from_mapping(ctxt.run_config)
    if cfg.defense == "dp-client-fixed":
        return fixedclipping_mod(msg, ctxt, call_next)
    if cfg.defense == "local-dp":
        local_dp = LocalDpMod(clipping_norm=cfg.clip_norm, sensitivity=cfg.clip_norm, epsilon=cfg.ldp_epsilon, delta=cfg.dp_delta)
        return local_dp(msg, ctxt, _seeding_numpy_after(call_next, cfg.seed))
    if cfg.defense in ("topk", "quantize"):
        return _compressed(msg, ctxt, call_next, cfg)
    if cfg.defense == "secagg":
        return secaggplus_mod(msg, ctxt, _before_secagg_quantises(call_next, cfg))
    return call_next(msg, ctxt)


def _seeding_numpy_after(call_next: ClientAppCallable, seed: int) -> ClientAppCallable:
    """``call_next``, then seed NumPy's global generator from (seed, partition, round)."""
    def wrapped(msg: Message, ctxt: Context) -> Message:
        reply = call_next(msg, ctxt)
        server_round = int(msg.content["config"]["server-round"])
        np.random.seed([seed, int(ctxt.node_config["partition-id"]), server_round, 13])
        return reply
    return wrapped


def _before_secagg_quantises(call_next: ClientAppCallable, cfg: RunConfig) -> ClientAppCallable:
    """``call_next`` (training, a legacy FitRes), then count the entries SecAgg+ will clip and
    seed NumPy from (seed, partition, round) for its stochastic rounding."""
    def wrapped(msg: Message, ctxt: Context) -> Message:
        reply = call_next(msg, ctxt)
        if reply.has_error():
            return reply
        fitres = compat.recorddict_to_fitres(reply.content, keep_input=True)
        arrays = {str(i): torch.from_numpy(a) for i, a in enumerate(parameters_to_ndarrays(fitres.parameters))}
        reply.content.config_records["fitres.metrics"]["secagg-clipped-entries"] = clipped_entries(cfg, arrays, fitres.num_examples)
        server_round = int(msg.content.config_records["fitins.config"]["server-round"])
        np.random.seed([cfg.seed, int(ctxt.node_config["partition-id"]), server_round, 19])
        return reply
    return wrapped


def _compressed(msg: Message, ctxt: Context, call_next: ClientAppCallable, cfg: RunConfig) -> Message:
    sent = msg.content["arrays"].to_torch_state_dict()
    reply = call_next(msg, ctxt)
    if reply.has_error():
        return reply
    update = update_between(sent, reply.content["arrays"].to_torch_state_dict())
    compressed = top_k(update, cfg.topk_fraction) if cfg.defense == "topk" else quantize(update, cfg.quant_bits)
    reply.content["arrays"] = ArrayRecord(apply_update(sent, compressed))
    return reply
