"""Item 3 of issue 17, one formulation measured: the grouped convolution's backward written as forward convolutions.

    python -m bench.grouped_conv_backward [--victims 64] [--repeats 10]

Why try it: PyTorch's double backward of a grouped convolution runs one
convolution per group (the SNN profile in bench/README.md). Here the
convolution is an ``autograd.Function`` whose backward is itself made of
forward ops (``conv_transpose2d`` for the input gradient; for the weight
gradient a grouped ``conv2d`` whose channels are (victim, sample) pairs and
whose stride becomes a dilation), so gradient matching's second derivative
only ever calls first-order convolution backward kernels. It prints the
relative difference of the matching loss and of its gradient to the dummy
against ``fedsnn.task.models.stacked_logits`` (same LeNet, random weights, one sample
per victim) and the CPU ms (``time.thread_time``, one thread) per
victim-evaluation of both, alternated, so the pair shares the machine's load.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from fedsnn.task.models import ModelSpec, stacked_logits

KERNEL, STRIDES = 5, (2, 2, 1)  # LeNet's (fedsnn.task.models.lenet); the equality check below would catch a drift
SPEC = ModelSpec("lenet", (1, 28, 28), 10)

SHAPES = {"conv1.weight": (12, 1, 5, 5), "conv1.bias": (12,), "conv2.weight": (12, 12, 5, 5), "conv2.bias": (12,),
          "conv3.weight": (12, 12, 5, 5), "conv3.bias": (12,), "fc.weight": (10, 588), "fc.bias": (10,)}


class ForwardOpsConv(torch.autograd.Function):
    """``stacked.grouped_conv`` (h [N, V*C, H, W], weight [V, O, C, k, k], bias [V, O]) with a backward of forward ops."""

    @staticmethod
    def forward(ctx, h, weight, bias, stride):
        ctx.save_for_backward(h, weight)
        ctx.stride = stride
        return F.conv2d(h, weight.flatten(0, 1), bias.flatten(), stride=stride, padding=KERNEL // 2,
                        groups=weight.shape[0])

    @staticmethod
    def backward(ctx, g):
        h, weight = ctx.saved_tensors
        s, p = ctx.stride, KERNEL // 2
        v, o, c, k, _ = weight.shape
        n, _, height, width = h.shape
        ho, wo = g.shape[-2:]
        extra = (height - ((ho - 1) * s - 2 * p + k), width - ((wo - 1) * s - 2 * p + k))
        grad_h = F.conv_transpose2d(g, weight.flatten(0, 1), stride=s, padding=p, output_padding=extra, groups=v)
        x = h.view(n, v, c, height, width).permute(2, 1, 0, 3, 4).reshape(c, v * n, height, width)
        gw = g.view(n, v, o, ho, wo).permute(1, 2, 0, 3, 4).reshape(v * o, n, ho, wo)
        dw = F.conv2d(x, gw, padding=p, dilation=s, groups=v)[..., :k, :k]  # [C, V*O, k, k]
        return grad_h, dw.view(c, v, o, k, k).permute(1, 2, 0, 3, 4), g.sum((0, 2, 3)).view(v, o), None


def forward_ops_logits(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``stacked_logits`` for LeNet with ``ForwardOpsConv``: x [V, B, 1, 28, 28] -> logits [V, B, 10]."""
    v, b = x.shape[:2]
    h = x.transpose(0, 1).flatten(1, 2)
    for name, stride in zip(("conv1", "conv2", "conv3"), STRIDES):
        h = torch.sigmoid(ForwardOpsConv.apply(h, params[f"{name}.weight"], params[f"{name}.bias"], stride))
    h = h.reshape(b, v, -1).permute(1, 2, 0)
    return torch.baddbmm(params["fc.bias"][:, :, None], params["fc.weight"], h).transpose(1, 2)


def matching_step(logits, params, target, x, probs) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradient-matching evaluation of V victims: (summed loss, its gradient to the dummies [V, 1, 1, 28, 28])."""
    weights = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    dummy = x.clone().requires_grad_(True)
    ce = -(probs * logits(weights, dummy).log_softmax(-1)).sum(-1).mean(-1)
    grads = torch.autograd.grad(ce.sum(), list(weights.values()), create_graph=True)
    loss = sum(((g - target[n]) ** 2).flatten(1).sum(1) for g, n in zip(grads, weights)).sum()
    return loss.detach(), torch.autograd.grad(loss, dummy)[0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--victims", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    v = args.victims
    params = {n: torch.rand(v, *s) - 0.5 for n, s in SHAPES.items()}
    target = {n: 0.01 * torch.randn(v, *s) for n, s in SHAPES.items()}
    x, probs = torch.rand(v, 1, 1, 28, 28), torch.softmax(torch.randn(v, 1, 10), -1)
    contenders = {"stacked_logits (grouped conv, autograd's double backward)":
                  lambda w, d: stacked_logits(w, d, SPEC, "image"), "backward of forward ops": forward_ops_logits}
    (l0, g0), (l1, g1) = (matching_step(c, params, target, x, probs) for c in contenders.values())
    print(f"{v} victims: loss rel. diff {float((l0 - l1).abs() / l0.abs()):.1e}, "
          f"dummy-gradient rel. diff {float((g0 - g1).norm() / g0.norm()):.1e}")
    costs = {name: [] for name in contenders}
    for _ in range(args.repeats):  # alternated: both share whatever else the machine runs
        for name, logits in contenders.items():
            start = time.thread_time()
            matching_step(logits, params, target, x, probs)
            costs[name].append(1e3 * (time.thread_time() - start) / v)
    for name, ms in costs.items():
        ms.sort()
        print(f"{name}: {ms[len(ms) // 2]:.3f} ms CPU per victim-evaluation (median; min {ms[0]:.3f}, max {ms[-1]:.3f})")


if __name__ == "__main__":
    main()
