"""The peer baseline: DLG/iDLG written the usual way, one victim, for bench (a)'s peer line.

This is the shape of the reference code (Zhu et al.'s DLG, Zhao et al.'s
iDLG repository, which runs both): the plain ``nn.Module`` (``build_model``;
SpikingJelly neurons on SNN-LeNet), the gradient-matching loss from
``torch.autograd.grad(create_graph=True)`` over ``model.parameters()``, and
``torch.optim.LBFGS(lr=1, history_size=100, line_search_fn=None)`` with its
defaults max_iter 20, max_eval 25 per step (fedsnn: max_eval 20). Reference
stopping rule (iDLG repository): after every step one more closure evaluation
gives the current loss, checked against 1e-6 every ``max(1, iterations // 30)``
steps; the last state is returned.

Not a library attack: it exists so that the bench prints fedsnn's lead over
it. Two choices keep the comparison about the implementation alone: the
dummy starts like fedsnn's (U(0.45, 0.55) image, then N(0, 1) label logits
from the same generator seeded 0; the reference code draws N(0, 1) images),
and the result is clamped to [0, 1] before scoring, as fedsnn's 'final' clamp does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attacks import ObservedUpdate
from fedsnn.task.models import build_model

TOLERANCE = 1e-6  # the reference's convergence threshold


@dataclass
class PeerResult:
    """samples [1, C, H, W] in [0, 1]; ``evaluations`` counts every closure call (each is
    a forward, the weight gradient with create_graph, and the backward to the dummy)."""

    samples: torch.Tensor
    evaluations: int
    final_loss: float


def reconstruct(observed: ObservedUpdate, attack: str, iterations: int) -> PeerResult:
    """Plain DLG ('dlg') or iDLG ('idlg') on one single-image FedSGD update."""
    model = build_model(observed.spec).eval()
    model.load_state_dict(observed.global_weights)
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    target = observed.observed_gradient()
    target = [target[n] for n in names]
    generator = torch.Generator().manual_seed(0)
    dummy = (0.45 + 0.1 * torch.rand((1, *observed.spec.input_shape), generator=generator)).requires_grad_(True)
    variables = [dummy]
    if attack == "idlg":  # label = argmin of the row sums of the last layer's weight gradient
        label = F.one_hot(target[-2].sum(-1).argmin().view(1), observed.spec.num_classes).float()
        probs = lambda: label
    else:
        logits = torch.randn(1, observed.spec.num_classes, generator=generator).requires_grad_(True)
        variables.append(logits)
        probs = lambda: logits.softmax(-1)
    optimizer = torch.optim.LBFGS(variables, lr=1.0, history_size=100, line_search_fn=None)
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        evaluations += 1
        optimizer.zero_grad()
        loss = -(probs() * F.log_softmax(model(dummy), -1)).sum(-1).mean()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        diff = sum(((g - t) ** 2).sum() for g, t in zip(grads, target))
        diff.backward()
        return diff

    check_every = max(1, iterations // 30)
    loss = float("inf")
    for step in range(iterations):
        optimizer.step(closure)
        loss = float(closure().detach())
        if step % check_every == 0 and loss < TOLERANCE:
            break
    return PeerResult(dummy.detach().clamp(0, 1), evaluations, loss)
