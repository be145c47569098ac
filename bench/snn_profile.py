"""What one SNN-LeNet matching evaluation costs, batched and alone, fused neuron vs per-step, and where it goes.

    python -m bench.snn_profile [--victims 64] [--timesteps 20]

One matching evaluation = the loss of bench (a) (weight gradient with
create_graph, squared distance) and its gradient to the dummy, for
``--victims`` MNIST victims at once (``attacks.batched.StackedMatcher``) or one
(``GradientMatcher``, as ``get_attack`` runs it). CPU time of this thread, one
torch thread, median of 7, the contenders of a line run in turn. The batched loss is
``StackedMatcher.loss`` written out here so that the neuron can be chosen
(``stacked_logits(fused=...)``; checked equal to the engine's); 'SpikingJelly
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

from attacks import AttackConfig
from attacks.batched import StackedMatcher
from attacks.gradient import GradientMatcher
from bench.interleaved import victims
from fedsnn.task.models import ModelSpec, soft_cross_entropy, stacked_logits

NEURON_NODES = ("_Neuron", "_NeuronBackward", "_NeuronBackwardBackward")


def cpu_ms(fns: list[Callable[[], object]], repeats: int = 7) -> list[float]:
    """Median CPU ms of each of ``fns``, run in turn (a, b, a, b, ...) after one warm-up each,
    so that a change of the neighbours' load weighs on all of them."""
    times: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            start = time.thread_time()
            fn()
            out.append(time.thread_time() - start)
    return [1e3 * statistics.median(t) for t in times]


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

    params = {n: p.clone().requires_grad_(True) for n, p in many.params.items()}

    def batched_loss(x: torch.Tensor, fused: bool) -> torch.Tensor:  # StackedMatcher.loss, [V]
        ce = soft_cross_entropy(stacked_logits(params, x, many.spec, many.kind, fused), probs)
        grads = dict(zip(params, torch.autograd.grad(ce.sum(), list(params.values()), create_graph=True)))
        return sum(((grads[n] - many.target[n]) ** 2).flatten(1).sum(1) for n in many.target)

    def batched(fused: bool = True) -> None:
        x = dummies.clone().requires_grad_(True)
        torch.autograd.grad(batched_loss(x, fused).sum(), x)

    def alone() -> None:
        x = dummies[0].clone().requires_grad_(True)
        torch.autograd.grad(matchers[0].loss(x, probs[0]), x)

    torch.testing.assert_close(batched_loss(dummies, True), many.loss(everyone, dummies, probs).detach())
    one = matchers[0]
    per_step = mock.patch.object(one, "logits", lambda w, x: stacked_logits(
        {n: t.unsqueeze(0) for n, t in w.items()}, x.unsqueeze(0), one.observed.spec, "image", fused=False)[0])
    modules = mock.patch.object(one, "logits", lambda w, x: functional_call(one.model, w, (x,)))
    def alone_per_step() -> None:
        with per_step:
            alone()

    def alone_modules() -> None:
        with modules:
            alone()

    fused_b, step_b = cpu_ms([batched, lambda: batched(False)])
    fused_a, step_a, spikingjelly = cpu_ms([alone, alone_per_step, alone_modules])
    costs = {"fused": (fused_b, fused_a), "per-step": (step_b, step_a)}
    v = args.victims
    for name, (b, a) in costs.items():
        print(f"{name} neuron: batched {v} {b:.0f} ms = {b / v:.2f} ms per victim-evaluation, alone {a:.2f} ms "
              f"-> {a / (b / v):.1f}x")
    print(f"alone through the SpikingJelly modules: {spikingjelly:.2f} ms")
    print(f"fused, batched {v}: {split(batched)}")
    print(f"fused, alone: {split(alone)}")


if __name__ == "__main__":
    main()
