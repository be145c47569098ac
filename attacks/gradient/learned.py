"""Learned inversion (Wu, Chen, Guo, Weinberger, "Learning to Invert", UAI 2023), on analytic features.

Threat model (REFERENCE.md section 8): the attacker declares auxiliary data
of the task's distribution that no client holds (``config.auxiliary``; its
``source`` goes into every result). For the attacked round's global weights it

1. simulates client updates on auxiliary samples with the victim's declared
   mode, lr, batch size and local steps: fedsgd in closed form (the
   classifier's gradient of a batch is the mean of p_i - y_i times h_i, read
   from one forward pass at the global weights), multi-step fedavg by
   replaying the local SGD on a copy of the model (``learned_simulations`` clients);
2. extracts from each simulated update exactly what ``analytic`` extracts from
   a real one (per recovered class: h = dW[c] / db[c], rounded to k/T on an
   SNN, and the label);
3. trains a decoder (MLP: standardised features + one-hot label -> image)
   to map them to the auxiliary images (a class held by several samples: to
   their mean), and
4. decodes every victim of the round with it.

The decoder is trained once per (model, global weights, declared training)
and shared by every victim of the group: ``reconstruct_group`` is the entry
for a round; ``reconstruct`` is a group of one. Training and per-victim costs
are reported apart (``diagnostics['decoder']``). A process keeps its last
``KEPT_DECODERS`` decoders (``decoder_key``: the group key, the auxiliary data's
digest and every learned setting): a server that meets the same global weights
and declared training again (another federation from the same initial model)
reuses the decoder a retrain would give (training is seeded), reported as
``reused``, with the costs of the training that made it. ``initial`` holds the
label-only guess (the auxiliary class mean of each inferred label): the
control every learned reconstruction is read against.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attacks.core import AttackConfig, AuxiliaryData, ObservedUpdate, Reconstruction
from attacks.gradient.analytic import Features, classifier_name, extract, features_of
from attacks.gradient.sensitivity import spike_flips
from fedsnn.task.models import build_model, is_spiking

CHUNK = 250  # auxiliary samples per forward pass
DECODER_BATCH = 256
KEPT_DECODERS = 8  # trained decoders a process keeps for reuse (decoder_key -> decoder, its training facts)
_decoders: OrderedDict[tuple, tuple["Decoder", dict[str, object]]] = OrderedDict()


def group_key(observed: ObservedUpdate) -> str:
    """Victims with equal keys share one decoder: same architecture, global weights and declared training."""
    digest = hashlib.sha1(repr((observed.spec, observed.mode, observed.lr, observed.local_steps,
                                observed.batch_size, observed.num_examples if observed.mode == "fedavg" else 0)).encode())
    for name in sorted(observed.global_weights):
        digest.update(name.encode())
        digest.update(observed.global_weights[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def decoder_key(observed: ObservedUpdate, config: AttackConfig, aux: AuxiliaryData) -> tuple:
    """What a trained decoder depends on: the group key, the auxiliary data (source and a digest of its
    samples and labels) and every setting of the simulation and training."""
    digest = hashlib.sha1(aux.source.encode())
    for tensor in (aux.samples, aux.labels):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return (group_key(observed), digest.hexdigest(), config.seed, config.learned_samples, config.learned_epochs,
            config.learned_hidden, config.learned_lr, config.learned_simulations, str(config.device))


def clear_decoders() -> None:
    """Forget every kept decoder (the next group trains its own)."""
    _decoders.clear()


def global_model(observed: ObservedUpdate, device: torch.device) -> nn.Module:
    model = build_model(observed.spec, seed=0).to(device).eval()
    model.load_state_dict({k: v.to(device) for k, v in observed.global_weights.items()})
    return model


@torch.no_grad()
def forward_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier inputs h [N, hidden] (an SNN's: averaged over T) and softmax [N, K] of ``x`` [N, ...]."""
    captured: list[torch.Tensor] = []
    classifier = dict(model.named_modules())[classifier_name(model)]
    hook = classifier.register_forward_hook(lambda mod, inputs, out: captured.append(inputs[0]))
    probs = []
    try:
        for start in range(0, len(x), CHUNK):
            batch = x[start:start + CHUNK]
            probs.append(model(batch.transpose(0, 1) if batch.dim() == 5 else batch).softmax(-1))
    finally:
        hook.remove()
    h = torch.cat([c.mean(0) if c.dim() == 3 else c for c in captured])
    return h, torch.cat(probs)


@dataclass
class Pairs:
    """Simulated training pairs: features [P, hidden], labels [P], target images [P, ...]."""

    features: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor


def _pairs_from(features: Features, samples: torch.Tensor, labels: torch.Tensor) -> list[tuple]:
    """Each recovered class present in the simulated batch -> (h, class, mean of its images)."""
    out = []
    for row, c in zip(features.values, features.labels.tolist()):
        chosen = labels == c
        if bool(chosen.any()):
            out.append((row, c, samples[chosen].mean(0)))
    return out


def simulate(observed: ObservedUpdate, aux: AuxiliaryData, config: AttackConfig, model: nn.Module,
             mean_probs: torch.Tensor) -> Pairs:
    """Simulated updates on auxiliary samples, read like the victim's (module docstring, step 1-2)."""
    generator = torch.Generator().manual_seed(config.seed)
    device = next(model.parameters()).device
    classifier = classifier_name(model)
    timesteps = observed.spec.timesteps if is_spiking(model) else None
    pairs: list[tuple] = []
    if observed.mode == "fedsgd":
        size = observed.batch_size
        order = torch.randperm(len(aux.labels), generator=generator)[: max(size, config.learned_samples)]
        x, y = aux.samples[order].to(device), aux.labels[order].to(device)
        h, probs = forward_features(model, x)
        dz = probs - F.one_hot(y, observed.spec.num_classes).float()  # dL/dz of each sample
        for start in range(0, len(y) - size + 1, size):
            s = slice(start, start + size)
            gradient = {f"{classifier}.weight": dz[s].T @ h[s] / size, f"{classifier}.bias": dz[s].mean(0)}
            pairs += _pairs_from(extract(gradient, classifier, size, timesteps, mean_probs, diagnose=False), x[s], y[s])
    else:
        size = min(observed.num_examples, observed.local_steps * observed.batch_size)
        for _ in range(config.learned_simulations):
            index = torch.randperm(len(aux.labels), generator=generator)[:size]
            x, y = aux.samples[index].to(device), aux.labels[index].to(device)
            client = global_model(observed, device)
            optimiser = torch.optim.SGD(client.parameters(), lr=observed.lr)
            for step in range(observed.local_steps):
                start = (step * observed.batch_size) % size
                xb, yb = x[start:start + observed.batch_size], y[start:start + observed.batch_size]
                optimiser.zero_grad()
                F.cross_entropy(client(xb.transpose(0, 1) if xb.dim() == 5 else xb), yb).backward()
                optimiser.step()
            scale = 1.0 / (observed.lr * observed.local_steps)
            sent, back = dict(model.named_parameters()), dict(client.named_parameters())
            gradient = {f"{classifier}.{p}": (sent[f"{classifier}.{p}"] - back[f"{classifier}.{p}"]).detach() * scale
                        for p in ("weight", "bias")}
            pairs += _pairs_from(extract(gradient, classifier, size, timesteps, mean_probs, diagnose=False), x, y)
    if not pairs:
        raise ValueError("the simulation produced no training pair")
    features, labels, targets = zip(*pairs)
    return Pairs(torch.stack(features), torch.tensor(labels, dtype=torch.long, device=device), torch.stack(targets))


class Decoder(nn.Module):
    """MLP from (standardised features [P, hidden], label [P]) to images [P, *sample_shape] in [0, 1]."""

    def __init__(self, hidden: int, num_classes: int, sample_shape: tuple[int, ...], width: int,
                 mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.num_classes, self.sample_shape = num_classes, tuple(sample_shape)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        out = int(torch.tensor(sample_shape).prod())
        self.net = nn.Sequential(nn.Linear(hidden + num_classes, width), nn.ReLU(), nn.Linear(width, width),
                                 nn.ReLU(), nn.Linear(width, out))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = torch.cat([(features - self.mean) / self.std, F.one_hot(labels, self.num_classes).float()], 1)
        return torch.sigmoid(self.net(z)).view(len(features), *self.sample_shape)


def train_decoder(pairs: Pairs, config: AttackConfig, num_classes: int) -> tuple[Decoder, float]:
    """Adam on the mean squared error, ``learned_epochs`` passes; returns the decoder and its last epoch's loss."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        mean, std = pairs.features.mean(0), pairs.features.std(0).clamp_min(1e-3)
        decoder = Decoder(pairs.features.shape[1], num_classes, pairs.targets.shape[1:], config.learned_hidden,
                          mean, std).to(pairs.features.device)
        optimiser = torch.optim.Adam(decoder.parameters(), lr=config.learned_lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.learned_epochs)
        epoch_loss = float("nan")
        for _ in range(config.learned_epochs):
            order, total = torch.randperm(len(pairs.labels)), 0.0
            for start in range(0, len(order), DECODER_BATCH):
                idx = order[start:start + DECODER_BATCH].to(pairs.labels.device)
                loss = F.mse_loss(decoder(pairs.features[idx], pairs.labels[idx]), pairs.targets[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(idx)
            schedule.step()
            epoch_loss = total / len(order)
    return decoder.eval(), epoch_loss


def decode(observed: ObservedUpdate, decoder: Decoder, model: nn.Module, aux: AuxiliaryData,
           mean_probs: torch.Tensor, config: AttackConfig, shared: dict[str, object]) -> Reconstruction:
    """One victim through the shared decoder: one image per inferred label of its batch."""
    start = time.perf_counter()
    features = features_of(observed, mean_probs, classifier_name(model))
    with torch.no_grad():
        images = decoder(features.values.to(mean_probs.device), features.labels.to(mean_probs.device)).cpu()
    by_class = {c: i for i, c in enumerate(features.labels.tolist())}
    labels = features.batch_labels[: config.max_samples or None]
    samples = torch.stack([images[by_class[int(c)]] for c in labels])
    decode_s = time.perf_counter() - start
    facts: dict[str, object] = {"attack": "learned", "analytic": features.summary(), "model_init": observed.spec.init,
                                "auxiliary": aux.source, "decoder": {**shared, "decode_s": decode_s}}
    if is_spiking(model):
        facts["spike_flips"] = spike_flips(model, samples.to(mean_probs.device), seed=config.seed)
    return Reconstruction(samples=samples, labels=labels.clone(), status="converged",
                          reason=f"decoded by a decoder shared by {shared['victims']} victim(s)",
                          final_loss=float(shared["train_loss"]), wall_time_s=decode_s, diagnostics=facts,
                          initial=aux.class_means()[labels])


def _group(observed: Sequence[ObservedUpdate], config: AttackConfig) -> list[Reconstruction]:
    aux = config.auxiliary
    if aux is None:
        raise ValueError("the learned attack needs declared auxiliary data (AttackConfig.auxiliary)")
    device = torch.device(config.device)
    model = global_model(observed[0], device)
    start = time.perf_counter()
    probe = aux.samples[torch.randperm(len(aux.labels), generator=torch.Generator().manual_seed(config.seed))[:256]]
    mean_probs = forward_features(model, probe.to(device))[1].mean(0)
    key = decoder_key(observed[0], config, aux)
    reused = key in _decoders
    if reused:
        _decoders.move_to_end(key)
        decoder, facts = _decoders[key]
    else:
        pairs = simulate(observed[0], aux, config, model, mean_probs)
        simulate_s = time.perf_counter() - start
        decoder, train_loss = train_decoder(pairs, config, observed[0].spec.num_classes)
        facts = {"simulate_s": simulate_s, "train_s": time.perf_counter() - start - simulate_s,
                 "pairs": len(pairs.labels), "train_loss": train_loss}
        _decoders[key] = (decoder, facts)
        while len(_decoders) > KEPT_DECODERS:
            _decoders.popitem(last=False)
    shared = {**facts, "reused": reused, "epochs": config.learned_epochs, "width": config.learned_hidden,
              "victims": len(observed)}
    return [decode(o, decoder, model, aux, mean_probs, config, shared) for o in observed]


def reconstruct_group(observed: Sequence[ObservedUpdate], config: AttackConfig) -> list[Reconstruction]:
    """Every victim, one decoder per ``group_key``; results in the order of ``observed``. Never raises."""
    groups: dict[str, list[int]] = {}
    for i, o in enumerate(observed):
        groups.setdefault(group_key(o), []).append(i)
    results: list[Reconstruction | None] = [None] * len(observed)
    for members in groups.values():
        start = time.perf_counter()
        try:
            outputs = _group([observed[i] for i in members], config)
        except Exception as exc:  # an attack reports failure, it never raises
            reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            outputs = [Reconstruction.failed(reason, time.perf_counter() - start) for _ in members]
        for i, r in zip(members, outputs):
            results[i] = r
    return results  # type: ignore[return-value]


def reconstruct(observed: ObservedUpdate, config: AttackConfig) -> Reconstruction:
    """A group of one (the decoder is trained for this victim alone)."""
    return reconstruct_group([observed], config)[0]
