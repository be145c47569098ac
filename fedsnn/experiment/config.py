"""The run config, read once at the edge into one typed, validated object.

Flower hands every app a flat mapping of kebab-case keys ([tool.flwr.app.config]
merged with ``--run-config``). ``RunConfig.from_mapping`` converts it here,
checks every value before any work starts and raises ``ConfigError`` naming the
key, the bad value and the valid choices. Nothing below this module sees
Flower's ``Context``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from fedsnn.task.data import DATASETS, EVENT_DATASETS, PARTITIONINGS
from attacks import ATTACK_NAMES
from attacks.core import DEVICES as ATTACK_DEVICES
from attacks.core import FEDAVG_HANDLINGS, MODES, THRESHOLDINGS
from attacks.core import OPTIMIZERS as ATTACK_OPTIMIZERS
from fedsnn.errors import RunConfigError
from fedsnn.task.models import INITS, MODELS, NEURONS, SURROGATES

JUDGES = ("auto", "cached", "none")
# Where each is applied: README "Defenses"; clients/defense_mods.py and server/defenses.py wire them.
DEFENSES = ("none", "dp-client-fixed", "dp-server-fixed", "local-dp", "dp-sgd", "topk", "quantize", "secagg")
SECAGG_MODULUS = 2**32  # Flower's SecAggPlusWorkflow modulus_range (the masks' ring), its default and its maximum
DEVICES = (*ATTACK_DEVICES, "auto")  # 'auto' is resolved once, by experiment.settings.resolve_device


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run. Field ``foo_bar`` is run-config key ``foo-bar``."""

    name: str = field(default="default", metadata=_doc("Run name; the run folder is <output-dir>/<timestamp>-<name>"))
    seed: int = field(default=0, metadata=_doc("Seeds partitions, client sampling, batches, init and attacks", min=0))
    dataset: str = field(default="mnist", metadata=_doc("Dataset", choices=DATASETS))
    data_dir: str = field(default="", metadata=_doc("Folder holding the datasets; '' = MNIST sample shipped in the package"))
    download: bool = field(default=False, metadata=_doc("Allow fetching a missing dataset (torchvision/tonic ones only)"))
    image_size: int = field(default=0, metadata=_doc("Resize images to this square size; 0 = dataset default (LFW 32, others native)", min=0))
    model: str = field(default="lenet", metadata=_doc("Client model (the fleet)", choices=MODELS))
    init: str = field(default="uniform-0.5", metadata=_doc("Weight init: U(-0.5,0.5) as the attack papers, or PyTorch's", choices=INITS))
    timesteps: int = field(default=20, metadata=_doc("SNN timesteps T (and event-frame bins)", min=1))
    neuron: str = field(default="if", metadata=_doc("SNN neuron", choices=NEURONS))
    surrogate: str = field(default="atan", metadata=_doc("SNN surrogate gradient", choices=tuple(SURROGATES)))
    partitioning: str = field(default="iid", metadata=_doc("How the training set is split into shards", choices=PARTITIONINGS))
    alpha: float = field(default=0.5, metadata=_doc("Dirichlet concentration (non-IID; smaller = more skewed)", gt=0))
    classes_per_partition: int = field(default=2, metadata=_doc("pathological: classes each client holds", min=1))
    shards_per_partition: int = field(default=2, metadata=_doc("shard: label-sorted shards each client holds", min=1))
    mode: str = field(default="fedavg", metadata=_doc("fedsgd: one step on one batch; fedavg: local epochs/steps", choices=MODES))
    local_epochs: int = field(default=1, metadata=_doc("fedavg: local epochs per round", min=1))
    local_steps: int = field(default=0, metadata=_doc("fedavg: local SGD steps per round; 0 = use local-epochs", min=0))
    batch_size: int = field(default=32, metadata=_doc("Client batch size", min=1))
    lr: float = field(default=0.25, metadata=_doc("Client SGD learning rate", gt=0))
    num_rounds: int = field(default=5, metadata=_doc("Federated rounds", min=1))
    fraction_train: float = field(default=1.0, metadata=_doc("Fraction of clients sampled per round", gt=0, max=1))
    min_nodes: int = field(default=2, metadata=_doc("Clients that must be connected before round 1", min=1))
    eval_samples: int = field(default=1000, metadata=_doc("Held-out test samples for global evaluation; 0 = all", min=0))
    output_dir: str = field(default="runs", metadata=_doc("Where run folders are created"))
    device: str = field(default="cpu", metadata=_doc("Torch device for training and attacks", choices=DEVICES))
    attacks: str = field(default="idlg", metadata=_doc("Curious-server attacks, comma-separated, or 'none'", choices_text=", ".join(ATTACK_NAMES)))
    attack_rounds: str = field(default="all", metadata=_doc("Rounds attacked: 'all', 'last', 'every:K' or a list '1,3,5'"))
    attack_clients: int = field(default=0, metadata=_doc("Clients attacked per round (seeded choice); 0 = all that trained", min=0))
    attack_samples: int = field(default=8, metadata=_doc("Samples the attacker rebuilds per update; 0 = all the client declares", min=0))
    attack_optimizer: str = field(default="lbfgs", metadata=_doc("Attack optimiser", choices=ATTACK_OPTIMIZERS))
    attack_iterations: int = field(default=50, metadata=_doc("Optimiser steps per attack (GRNN: generator updates); the faithful DLG/iDLG budget is 300", min=1))
    attack_restarts: int = field(default=1, metadata=_doc("Random restarts per attack; the best match is kept", min=1))
    attack_time_budget: float = field(default=0.0, metadata=_doc("Wall-clock safety guard per attack (s); 0 = off. Attacks stop on iterations and attack-tolerance; a guard that fires is recorded (reason 'time guard fired', time-guard-fired) and makes results depend on machine speed", min=0))
    attack_tolerance: float = field(default=1e-6, metadata=_doc("Attacks stop as 'converged' once the matching loss is below it; sets success-case PSNR (1e-6: ~60 dB, 1e-9: ~75 dB on MNIST)", min=0))
    fedavg_handling: str = field(default="average-gradient", metadata=_doc("How a multi-step update is read", choices=FEDAVG_HANDLINGS))
    thresholding: str = field(default="none", metadata=_doc("Spike thresholding of SNN reconstructions", choices=THRESHOLDINGS))
    tau: float = field(default=0.5, metadata=_doc("Threshold tau for spike thresholding", gt=0, max=1))
    gamin_rounds: str = field(default="last", metadata=_doc("Rounds after which GAMIN inverts the global model: 'none', 'last', 'every:K', '1,3'"))
    gamin_budget: int = field(default=3200, metadata=_doc("GAMIN target queries per class (paper: 1,280,000)", min=128))
    gamin_classes: str = field(default="all", metadata=_doc("Classes GAMIN inverts: 'all' or a list '0,3,7'"))
    judge: str = field(default="auto", metadata=_doc("Judge for ASR: train once and cache, only use a cached one, or none", choices=JUDGES))
    defense: str = field(default="none", metadata=_doc("Defense against the curious server (README 'Defenses')", choices=DEFENSES))
    clip_norm: float = field(default=1.0, metadata=_doc("DP defenses: L2 clipping norm C (of the update; dp-sgd: of each sample's gradient)", gt=0))
    noise_multiplier: float = field(default=1.0, metadata=_doc("dp-client-fixed, dp-server-fixed, dp-sgd: Gaussian noise std / C", gt=0))
    dp_delta: float = field(default=1e-5, metadata=_doc("DP defenses: the delta of the (epsilon, delta) reported", gt=0, max=0.1))
    ldp_epsilon: float = field(default=1.0, metadata=_doc("local-dp: LocalDpMod's epsilon per round (sensitivity = clip-norm)", gt=0))
    topk_fraction: float = field(default=0.1, metadata=_doc("topk: fraction of update entries kept (largest magnitude)", gt=0, max=1))
    quant_bits: int = field(default=8, metadata=_doc("quantize: bits per update entry (2^b uniform levels per tensor)", min=1))
    num_shares: int = field(default=0, metadata=_doc("secagg: shares each client's SecAgg+ secrets are split into (its neighbourhood, itself included); 0 = every client of the round; below that an odd number >= 3", min=0))
    reconstruction_threshold: int = field(default=2, metadata=_doc("secagg: shares needed to rebuild a secret (2 <= threshold <= num-shares <= clients per round)", min=2))
    clipping_range: float = field(default=8.0, metadata=_doc("secagg: each weight, times its client's num-examples / max-weight, is clipped to [-r, r] before quantisation", gt=0))
    quantization_range: int = field(default=4194304, metadata=_doc("secagg: integer levels over [-clipping-range, clipping-range] (stochastic rounding); clients per round x this must stay <= 2^32", min=2))
    max_weight: float = field(default=1000.0, metadata=_doc("secagg: num-examples that maps to weight 1 (larger counts risk clipping; smaller ones coarser quantisation)", gt=0))
    source_commit: str = field(default="", metadata=_doc("Git commit ('+dirty' if modified) of the checkout fedsnn-run started from; set by fedsnn-run, recorded in config.json"))

    @classmethod
    def keys(cls) -> dict[str, dataclasses.Field]:
        return {f.name.replace("_", "-"): f for f in dataclasses.fields(cls)}

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> "RunConfig":
        """Convert and validate Flower's run config; unknown keys are errors (typos)."""
        fields = cls.keys()
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in fields:
                raise RunConfigError(key, value, "a known key: " + ", ".join(sorted(fields)))
            values[fields[key].name] = _convert(key, value, fields[key])
        return cls(**values)

    def __post_init__(self) -> None:
        for key, f in self.keys().items():
            _check(key, getattr(self, f.name), f.metadata)
        _check_path_component("name", self.name)
        if self.dataset != "mnist" and not self.data_dir:
            raise RunConfigError(
                "data-dir", self.data_dir,
                f"a folder holding '{self.dataset}' (only 'mnist' has a built-in sample); see README 'Real data'",
            )

        if self.dataset in EVENT_DATASETS and self.model != "snn-lenet":
            raise RunConfigError("model", self.model, f"'snn-lenet' for event data ({self.dataset} has no ANN input)")

        if self.device == "cuda" and not torch.cuda.is_available():
            raise RunConfigError("device", self.device, "'cpu' or 'auto' (no CUDA device is visible)")

        for name in self.attack_names:
            if name not in ATTACK_NAMES:
                raise RunConfigError("attacks", self.attacks, f"a comma-separated subset of {ATTACK_NAMES}, or 'none'")
        self.attacked_rounds()  # validates attack-rounds
        self.gamin_round_set()
        self.gamin_class_list()
        if self.quant_bits > 16:
            raise RunConfigError("quant-bits", self.quant_bits, "an integer from 1 to 16")
        if self.num_shares == 1:
            raise RunConfigError("num-shares", self.num_shares, "0 (every client of the round) or an integer >= 2")
        if self.num_shares and self.reconstruction_threshold > self.num_shares:
            raise RunConfigError("reconstruction-threshold", self.reconstruction_threshold,
                                 f"an integer from 2 to num-shares ({self.num_shares})")
        if self.quantization_range >= SECAGG_MODULUS:
            raise RunConfigError("quantization-range", self.quantization_range, f"an integer from 2 to {SECAGG_MODULUS - 1}")
        if self.gamin_round_set() and self.dataset in EVENT_DATASETS:
            raise RunConfigError("gamin-rounds", self.gamin_rounds, "'none' for event data (GAMIN generates static inputs)")

    @property
    def attack_names(self) -> tuple[str, ...]:
        if self.attacks.strip().lower() in ("", "none"):
            return ()
        return tuple(a.strip() for a in self.attacks.split(",") if a.strip())

    def attacked_rounds(self) -> frozenset[int]:
        """The rounds the curious server attacks, from ``attack-rounds``."""
        return _rounds("attack-rounds", self.attack_rounds, self.num_rounds)

    def gamin_round_set(self) -> frozenset[int]:
        """The rounds after which GAMIN inverts the aggregated model."""
        return _rounds("gamin-rounds", self.gamin_rounds, self.num_rounds)

    def gamin_class_list(self) -> list[int] | None:
        """Classes GAMIN attacks; None = all."""
        if self.gamin_classes.strip().lower() == "all":
            return None
        try:
            classes = [int(c) for c in self.gamin_classes.split(",")]
        except ValueError:
            classes = []
        if not classes or min(classes) < 0 or len(set(classes)) != len(classes):
            raise RunConfigError("gamin-classes", self.gamin_classes, "'all' or a list of distinct class indices like '0,3,7'")
        return classes

    def check_classes(self, num_classes: int) -> None:
        """GAMIN's classes must exist in the dataset (known once its data is loaded)."""
        classes = self.gamin_class_list() or []
        if self.gamin_round_set() and classes and max(classes) >= num_classes:
            raise RunConfigError("gamin-classes", self.gamin_classes,
                                 f"'all' or class indices 0..{num_classes - 1} ('{self.dataset}' has {num_classes} classes)")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, f.name) for k, f in self.keys().items()}

    def digest(self) -> str:
        """Short stable hash of the settings, stamped on every result line (where the
        code came from, ``source-commit``, is recorded beside it, not hashed)."""
        settings = {k: v for k, v in self.to_dict().items() if k != "source-commit"}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def markdown_table() -> str:
    """README's "Run-config keys" table, generated from the fields (a test keeps README equal to it)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, f in RunConfig.keys().items():
        default = json.dumps(f.default)
        meaning = f.metadata["doc"]
        if "choices" in f.metadata:
            meaning += " (" + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + ")"
        elif "choices_text" in f.metadata:
            meaning += " (" + ", ".join(f"`{c}`" for c in f.metadata["choices_text"].split(", ")) + ")"
        rows.append(f"| `{key}` | `{default}` | {meaning} |")
    return "\n".join(rows) + "\n"


def _convert(key: str, value: Any, f: dataclasses.Field) -> Any:
    kind = type(f.default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise RunConfigError(key, value, "true or false")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise RunConfigError(key, value, "an integer")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RunConfigError(key, value, "a number")
        if not math.isfinite(value):
            raise RunConfigError(key, value, "a finite number")
        return float(value)
    if not isinstance(value, str):
        raise RunConfigError(key, value, "a string")
    return value


def _check(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    if "choices" in meta and value not in meta["choices"]:
        raise RunConfigError(key, value, meta["choices"])
    if "min" in meta and value < meta["min"]:
        raise RunConfigError(key, value, f"{'an integer' if isinstance(value, int) else 'a number'} >= {meta['min']}")
    if "gt" in meta and not value > meta["gt"]:
        raise RunConfigError(key, value, f"a number > {meta['gt']}" + (f" and <= {meta['max']}" if "max" in meta else ""))
    if "max" in meta and value > meta["max"]:
        raise RunConfigError(key, value, f"a number <= {meta['max']}")


def _rounds(key: str, spec: str, last: int) -> frozenset[int]:
    """Parse 'all', 'none', 'last', 'every:K' or '1,3,5' into round numbers, all within 1..last."""
    text = spec.strip().lower()
    if text == "all":
        return frozenset(range(1, last + 1))
    if text == "none":
        return frozenset()
    if text == "last":
        return frozenset({last})
    try:
        if text.startswith("every:"):
            k = int(text.split(":", 1)[1])
            rounds = frozenset(range(k, last + 1, k)) if k >= 1 else frozenset()
        else:
            rounds = frozenset(int(r) for r in text.split(","))  # '1,,3': int('') raises
    except ValueError:
        rounds = frozenset()
    if not rounds or min(rounds) < 1:
        raise RunConfigError(key, spec, f"'all', 'none', 'last', 'every:K' (1 <= K <= num-rounds {last}) "
                                        "or a list like '1,3,5'")
    if max(rounds) > last:
        beyond = ", ".join(str(r) for r in sorted(rounds) if r > last)
        raise RunConfigError(key, spec, f"rounds between 1 and num-rounds ({last}); round {beyond} never runs")
    return rounds


def _check_path_component(key: str, value: str) -> None:
    """A name becomes one folder name: no separators, not '.', '..' or empty."""
    if not value or value in (".", "..") or any(c in value for c in "/\\\0") or value != value.strip():
        raise RunConfigError(key, value, "a single folder name without '/', '\\\\', '.' or '..', e.g. 'snn-run1'")


if __name__ == "__main__":  # python -m fedsnn.experiment.config > table.md
    print(markdown_table(), end="")
