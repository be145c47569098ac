"""The GAMIN-SNN paper's target models: one hidden layer of 3,000 units.

ANN::

    x [B, C, H, W] -> flatten [B, D] -> Linear(D, 3000) -> Sigmoid -> Linear(3000, K) -> logits [B, K]

SNN (snntorch ``Leaky``, beta 0.7, threshold 1, reset by subtraction,
fast-sigmoid surrogate with slope 40)::

    x -> encode (rate, T=25) [T, B, D] -> Linear -> Leaky [T, B, 3000]
      -> Linear -> Leaky -> output spikes and membrane [T, B, K]

    mem[t] = beta * mem[t-1] + W s_in[t] + b - thr * H(mem[t-1] - thr)
    s_out[t] = H(mem[t] - thr)

Trained by BPTT on sum_t CE(mem[t], y). Prediction is the argmax of the output
spike count; confidence scores (what a black-box attacker sees) are the mean
over time of softmax(mem[t]) (``membrane-softmax``) or the normalised spike
count (``spike-count``).

The fused forward (``SNNTarget.run``) applies each Linear once over
[T*B, N] and loops only the neuron update. On this BLAS build it equals the
per-step loop (``run_per_step``) bit for bit for batches of 16 or more; for
batches below 16 the per-step loop's small-matrix kernel rounds differently
(<= 1 ulp), so exactness is tested at B >= 16.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate
from torch import nn

from fedsnn.task.models.encodings import ENCODINGS, encode
from fedsnn.errors import ConfigError

KINDS = ("ann", "snn")
DECODINGS = ("membrane-softmax", "spike-count")


@dataclass(frozen=True)
class TargetSpec:
    """Hyperparameters of one target; saved with its checkpoint.

    input_shape: (C, H, W) of one sample; the network sees it flattened.
    """

    kind: str
    input_shape: tuple[int, int, int]
    num_classes: int
    hidden: int = 3000
    timesteps: int = 25
    beta: float = 0.7
    slope: float = 40.0
    encoding: str = "rate"
    decoding: str = "membrane-softmax"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError("target-kind", self.kind, KINDS)
        if self.encoding not in ENCODINGS:
            raise ConfigError("encoding", self.encoding, ENCODINGS)
        if self.decoding not in DECODINGS:
            raise ConfigError("decoding", self.decoding, DECODINGS)
        if self.timesteps < 1:
            raise ConfigError("timesteps", self.timesteps, "an integer >= 1")
        if not 0.0 <= self.beta <= 1.0:
            raise ConfigError("beta", self.beta, "a float in [0, 1]")

    @property
    def input_size(self) -> int:
        c, h, w = self.input_shape
        return c * h * w


class ANNTarget(nn.Module):
    """Linear -> Sigmoid -> Linear on flattened inputs [B, C, H, W] -> logits [B, K]."""

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.fc1 = nn.Linear(spec.input_size, spec.hidden)
        self.fc2 = nn.Linear(spec.hidden, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.sigmoid(self.fc1(x.flatten(1))))

    def loss(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.cross_entropy(self(x), y)

    def confidences(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Softmax scores [B, K]."""
        return self(x).softmax(-1)

    def predict(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self(x).argmax(-1)


class SNNTarget(nn.Module):
    """Two-layer LIF network; input [B, C, H, W] is encoded to [T, B, D] spikes."""

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__()
        self.spec = spec
        grad = surrogate.fast_sigmoid(slope=spec.slope)
        self.fc1 = nn.Linear(spec.input_size, spec.hidden)
        self.lif1 = snn.Leaky(beta=spec.beta, spike_grad=grad)
        self.fc2 = nn.Linear(spec.hidden, spec.num_classes)
        self.lif2 = snn.Leaky(beta=spec.beta, spike_grad=grad)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """[B, C, H, W] in [0, 1] -> spikes [T, B, D]."""
        return encode(x.flatten(1), self.spec.timesteps, self.spec.encoding, generator)

    @staticmethod
    def _neuron_loop(lif: snn.Leaky, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``lif`` over time from a zero state: current [T, B, N] -> (spikes, membrane) [T, B, N].

        The arithmetic is snntorch ``Leaky.forward`` (subtract reset, no
        inhibition, graded factor 1) op for op, so results are bit-identical:
        mem = beta * mem + cur - reset * thr, spike = H(mem - thr), where the
        reset H(mem[t-1] - thr) is the previous step's spike value. Without
        autograd the update runs in place into preallocated outputs (the
        query path, ~2.5x faster); with autograd the surrogate spike function
        is called as snntorch does.
        """
        beta, thr = lif.beta.clamp(0, 1), lif.threshold
        mem = torch.zeros_like(current[0])
        if not torch.is_grad_enabled():
            spikes, mems = torch.empty_like(current), torch.empty_like(current)
            reset = torch.zeros_like(mem)
            for t in range(current.shape[0]):
                mem.mul_(beta).add_(current[t]).sub_(reset * thr)
                reset = spikes[t].copy_((mem - thr) > 0)
                mems[t].copy_(mem)
            return spikes, mems
        spk = torch.zeros_like(mem)
        spike_list, mem_list = [], []
        for cur in current:
            mem = beta * mem + cur - spk.detach() * thr
            spk = lif.spike_grad(mem - thr)
            spike_list.append(spk)
            mem_list.append(mem)
        return torch.stack(spike_list), torch.stack(mem_list)

    def run(self, spikes_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused forward: spikes [T, B, D] -> output (spikes, membrane), each [T, B, K]."""
        t, b = spikes_in.shape[:2]
        cur1 = self.fc1(spikes_in.flatten(0, 1)).view(t, b, -1)  # [T*B, D] @ W1 once
        spk1, _ = self._neuron_loop(self.lif1, cur1)
        cur2 = self.fc2(spk1.flatten(0, 1)).view(t, b, -1)
        return self._neuron_loop(self.lif2, cur2)

    def run_per_step(self, spikes_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference: the plain snntorch tutorial loop, every layer called per step."""
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        spikes, mems = [], []
        for x_t in spikes_in:
            spk1, mem1 = self.lif1(self.fc1(x_t), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spikes.append(spk2)
            mems.append(mem2)
        return torch.stack(spikes), torch.stack(mems)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.run(self.encode(x, generator))

    def loss(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """sum over t of CE(mem[t], y), each averaged over the batch."""
        _, mem = self(x, generator)
        return F.cross_entropy(mem.flatten(0, 1), y.repeat(mem.shape[0])) * mem.shape[0]

    def confidences(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scores [B, K] summing to 1: mean_t softmax(mem[t]), or spike counts / total
        (uniform where the output layer stayed silent)."""
        spk, mem = self(x, generator)
        if self.spec.decoding == "membrane-softmax":
            return mem.softmax(-1).mean(0)
        counts = spk.sum(0)
        total = counts.sum(-1, keepdim=True)
        uniform = torch.full_like(counts, 1.0 / counts.shape[-1])
        return torch.where(total > 0, counts / total.clamp_min(1), uniform)

    def predict(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Argmax of output spike counts [B] (ties go to the lower class index)."""
        spk, _ = self(x, generator)
        return spk.sum(0).argmax(-1)


Target = ANNTarget | SNNTarget


def build_target(spec: TargetSpec, seed: int = 0) -> Target:
    """A freshly initialised target (PyTorch default init, seeded)."""
    torch.manual_seed(seed)
    return ANNTarget(spec) if spec.kind == "ann" else SNNTarget(spec)


def save_target(model: Target, path: Path, test_accuracy: float) -> None:
    """Checkpoint (spec + weights) at ``path``; spec and accuracy also in ``path``.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = asdict(model.spec)
    torch.save({"spec": spec, "state_dict": model.state_dict()}, path)
    path.with_suffix(".json").write_text(json.dumps({"spec": spec, "test_accuracy": test_accuracy}, indent=2))


def load_target(path: Path) -> tuple[Target, float]:
    """Inverse of ``save_target``: (model in eval mode, recorded test accuracy)."""
    blob = torch.load(path, weights_only=True)
    spec_dict = dict(blob["spec"])
    spec = TargetSpec(**{**spec_dict, "input_shape": tuple(spec_dict["input_shape"])})
    model = build_target(spec)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, json.loads(path.with_suffix(".json").read_text())["test_accuracy"]
