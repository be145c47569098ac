"""What one SNN-LeNet matching evaluation costs, batched and alone, fused neuron vs per-step, and where it goes.

    python -m bench.snn_profile [--victims 64] [--timesteps 20]

One matching evaluation = the loss of bench (a) (weight gradient with
create_graph, squared distance) and its gradient to the dummy, for
``--victims`` MNIST victims at once (``attacks.batched.StackedMatcher``) or one
(``GradientMatcher``, as ``get_attack`` runs it). CPU time of this thread, one
torch thread, median of 5 after a warm-up. The per-step neuron is selected by
patching ``stacked.spike_train`` for the comparison only; 'SpikingJelly
modules' is the one-victim path before the fused neuron (``functional_call``
on ``SNNLeNet``). The profile (torch.profiler, 3 evaluations; its own overhead
included) splits the fused evaluation into convolution kernels and the fused
neuron's nodes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from unittest import mock

import torch
from torch.func import functional_call
from torch.profiler import profile

import fedsnn.task.models.stacked as stacked
from attacks import AttackConfig
from attacks.batched import StackedMatcher
from attacks.gradient import GradientMatcher
from bench.interleaved import victims
from fedsnn.task.models import ModelSpec

NEURON_NODES = ("_Neuron", "_NeuronBackward", "_NeuronBackwardBackward")


def cpu_ms(fn: Callable[[], object], repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return 1e3 * statistics.median(times)


def split(fn: Callable[[], object]) -> str:
    """'total, convolutions, fused neuron' of one evaluation under torch.profiler."""
    with profile() as prof:
        for _ in range(3):
            fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 3e3
    conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key) / 3e3
    neuron = sum(e.cpu_time_total for e in events if e.key in NEURON_NODES) / 3e3
    calls = sum(e.count for e in events if e.key.startswith("aten::")) / 3
    return (f"profiled {total:.1f} ms: convolutions {conv:.1f} ms ({conv / total:.0%}), fused neuron "
            f"{neuron:.1f} ms ({neuron / total:.0%}), {calls:.0f} aten calls")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--victims", type=int, default=64)
    p.add_argument("--timesteps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    observed, _ = victims(ModelSpec("snn-lenet", (1, 28, 28), 10, timesteps=args.timesteps), args.victims)
    matchers = [GradientMatcher(o, AttackConfig()) for o in observed]
    many = StackedMatcher(matchers)
    generator = torch.Generator().manual_seed(0)
    dummies = torch.stack([m.layout.initial(generator) for m in matchers])
    probs = torch.stack([m.one_hot(torch.tensor([i % 10])) for i, m in enumerate(matchers)])
    everyone = torch.arange(args.victims)

    def batched() -> None:
        x = dummies.clone().requires_grad_(True)
        torch.autograd.grad(many.loss(everyone, x, probs).sum(), x)

    def alone() -> None:
        x = dummies[0].clone().requires_grad_(True)
        torch.autograd.grad(matchers[0].loss(x, probs[0]), x)

    per_step = mock.patch.object(stacked, "spike_train", stacked.spike_train_per_step)
    modules = mock.patch.object(matchers[0], "logits", lambda w, x: functional_call(matchers[0].model, w, (x,)))
    costs = {"fused": (cpu_ms(batched), cpu_ms(alone))}
    with per_step:
        costs["per-step"] = (cpu_ms(batched), cpu_ms(alone))
    with modules:
        spikingjelly = cpu_ms(alone)
    v = args.victims
    for name, (b, a) in costs.items():
        print(f"{name} neuron: batched {v} {b:.0f} ms = {b / v:.2f} ms per victim-evaluation, alone {a:.2f} ms "
              f"-> {a / (b / v):.1f}x")
    print(f"alone through the SpikingJelly modules: {spikingjelly:.2f} ms")
    print(f"fused, batched {v}: {split(batched)}")
    print(f"fused, alone: {split(alone)}")


if __name__ == "__main__":
    main()
