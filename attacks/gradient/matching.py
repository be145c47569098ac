"""The one gradient-matching core that DLG, iDLG and GRNN share.

The attacker rebuilds the victim from the spec and the global weights it sent,
feeds it a candidate batch, and scores how well that batch's update matches the
observed one (REFERENCE.md section 3, FL-SNN paper eq. 2)::

    L_G = sum over layers l of || g_l(dummy) - g_l(observed) ||_2^2

``g(dummy)`` is the gradient of the mean (soft-label) cross-entropy at the
global weights, or, for fedavg with ``fedavg_handling='replay'``, the weight
change of the client's ``local_steps`` SGD steps replayed differentiably on the
dummy batch (``torch.func.functional_call``), divided by ``lr * local_steps``
so that both sides are in gradient units (see ``ObservedUpdate.observed_gradient``).
Gradients are taken with ``create_graph=True``: the optimiser differentiates
the gradient itself (through the surrogate pathway on an SNN). An SNN victim
is evaluated by the stacked functional form with one victim
(``fedsnn.task.models.stacked_logits``: the fused IF/LIF node, the same code
the batched engine runs), not by its SpikingJelly modules: the spikes are
bit-identical and the gradients equal to rounding (tested), at a fraction of
the per-step autograd graph's cost.

``relaxed_snn_logits`` is the attacker's own relaxed SNN forward (the
``relax_spikes`` option, used by Inverting Gradients): spikes replaced by a
temperature-annealed sigmoid, the exact model at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from attacks.core import AttackConfig, ObservedUpdate
from attacks.gradient.thresholding import binarise_
from fedsnn.task.models import build_model, is_spiking, soft_cross_entropy, stacked_logits

DUMMY_SIGMA = 0.1  # events: |N(0, 0.1)| (paper eq. 1)
GREY_LOW, GREY_HIGH = 0.45, 0.55  # images: U(0.45, 0.55)


def squared_distance(candidate: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the squared L2 distance (a scalar tensor)."""
    return sum(((candidate[name] - target[name]) ** 2).sum() for name in target)  # type: ignore[return-value]


@dataclass(frozen=True)
class DummyLayout:
    """Shape, initialisation and projection of the free input of an attack.

    kind: 'image' -> [B, C, H, W] (ANN; SNN on static images, replicated over T
    by the model); 'frames' -> a free [T, B, C, H, W] dummy for static images;
    'events' -> [T, B, C, H, W] spike intensities, the data's own modality.
    """

    kind: str
    batch: int
    sample_shape: tuple[int, int, int]
    timesteps: int

    @property
    def shape(self) -> tuple[int, ...]:
        if self.kind == "image":
            return (self.batch, *self.sample_shape)
        return (self.timesteps, self.batch, *self.sample_shape)

    @property
    def batch_axis(self) -> int:
        return 0 if self.kind == "image" else 1

    def initial(self, generator: torch.Generator) -> torch.Tensor:
        """Images U(0.45, 0.55) (the same grey image at every timestep for 'frames');
        events |N(0, 0.1)|. Returns a fresh float tensor of ``self.shape``."""
        if self.kind == "events":
            return torch.randn(self.shape, generator=generator).mul_(DUMMY_SIGMA).abs_()
        grey = GREY_LOW + (GREY_HIGH - GREY_LOW) * torch.rand((self.batch, *self.sample_shape), generator=generator)
        return grey if self.kind == "image" else grey.expand(self.timesteps, *grey.shape).clone()

    @torch.no_grad()
    def clamp_(self, x: torch.Tensor) -> None:
        """Pixels to [0, 1]; spike intensities only kept non-negative (paper III-B)."""
        if self.kind == "events":
            x.clamp_(min=0.0)
        else:
            x.clamp_(0.0, 1.0)

    def project_(self, x: torch.Tensor, config: AttackConfig) -> None:
        """After every update: clamp if ``config.clamp == 'step'``, then
        Algorithm 2's binarisation if ``config.thresholding == 'in'``."""
        if config.clamp == "step":
            self.clamp_(x)
        if config.thresholding == "in":
            binarise_(x, config.tau)

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """Model-input layout -> the data's own: images [B, C, H, W] ('frames'
        averaged over T), events [T, B, ...] -> [B, T, C, H, W]."""
        if self.kind == "frames":
            return x.mean(0)
        if self.kind == "events":
            return x.transpose(0, 1).contiguous()
        return x


def layout_for(observed: ObservedUpdate, config: AttackConfig) -> DummyLayout:
    spiking = observed.spec.name == "snn-lenet"
    if observed.modality == "events":
        if not spiking:
            raise ValueError(f"event data need a spiking model, got {observed.spec.name!r}")
        kind = "events"
    else:
        kind = "frames" if spiking and config.dummy_layout == "frames" else "image"
    size = observed.reconstruction_size
    if config.max_samples:
        size = min(size, config.max_samples)
    return DummyLayout(kind, size, tuple(observed.spec.input_shape), observed.spec.timesteps)


class GradientMatcher:
    """The victim, the observed gradient and the matching objective for one update.

    Parameters
    ----------
    observed : ObservedUpdate
    config : AttackConfig
        Only ``device``, ``fedavg_handling`` and ``dummy_layout`` are read here.
    """

    def __init__(self, observed: ObservedUpdate, config: AttackConfig) -> None:
        self.observed, self.device = observed, torch.device(config.device)
        self.model: nn.Module = build_model(observed.spec, seed=0).to(self.device).eval()
        self.model.load_state_dict({k: v.to(self.device) for k, v in observed.global_weights.items()})
        # Victim weights as leaves: the objective differentiates with respect to them.
        self.params = {n: p.detach().clone().requires_grad_(True) for n, p in self.model.named_parameters()}
        observed_grad = observed.observed_gradient()
        missing = sorted(set(self.params) - set(observed_grad))
        if missing:
            raise ValueError(f"the observed update lacks parameters {missing}")
        self.target = {n: observed_grad[n].to(self.device) for n in self.params}
        self.replay = observed.mode == "fedavg" and config.fedavg_handling == "replay"
        self.layout = layout_for(observed, config)
        self.num_classes = observed.spec.num_classes
        self.spiking = is_spiking(self.model)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """long [B] -> float [B, K] on the attack's device."""
        return F.one_hot(labels.to(self.device), self.num_classes).float()

    def logits(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The victim's logits [B, K] for dummy ``x`` (``self.layout.shape``) at ``weights``:
        an SNN through ``stacked_logits`` with V = 1 (module docstring), an ANN through its module."""
        if not self.spiking:
            return functional_call(self.model, weights, (x,))
        kind = "image" if self.layout.kind == "image" else "steps"
        return stacked_logits({n: w.unsqueeze(0) for n, w in weights.items()}, x.unsqueeze(0),
                              self.observed.spec, kind)[0]

    def batch_gradient(
        self, weights: dict[str, torch.Tensor], x: torch.Tensor, probs: torch.Tensor, create_graph: bool = True
    ) -> dict[str, torch.Tensor]:
        """Gradient of the mean soft cross-entropy of batch ``x`` at ``weights``."""
        loss = soft_cross_entropy(self.logits(weights, x), probs)
        grads = torch.autograd.grad(loss, list(weights.values()), create_graph=create_graph)
        return dict(zip(weights, grads))

    def candidate(self, x: torch.Tensor, probs: torch.Tensor, create_graph: bool = True) -> dict[str, torch.Tensor]:
        """The dummy batch's update in gradient units, name -> tensor.

        x: dummy in ``self.layout.shape``; probs: [B, K] label distribution.
        Replay splits the B dummies into consecutive minibatches of the declared
        batch size, cycled in order (the client's order is unknown; the dummy's
        order is free, so only the partition matters).
        """
        if not self.replay:
            return self.batch_gradient(self.params, x, probs, create_graph)
        obs, axis = self.observed, self.layout.batch_axis
        starts = list(range(0, self.layout.batch, obs.batch_size))
        weights = dict(self.params)
        for step in range(obs.local_steps):
            start = starts[step % len(starts)]
            index = torch.arange(start, min(start + obs.batch_size, self.layout.batch), device=self.device)
            grads = self.batch_gradient(weights, x.index_select(axis, index), probs[index], create_graph)
            weights = {n: w - obs.lr * grads[n] for n, w in weights.items()}
        scale = 1.0 / (obs.lr * obs.local_steps)
        return {n: (self.params[n] - weights[n]) * scale for n in weights}

    def loss(self, x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """L_G of the dummy batch (scalar, differentiable w.r.t. ``x`` and ``probs``)."""
        return squared_distance(self.candidate(x, probs), self.target)

    def last_linear_name(self) -> str:
        """State-dict prefix of the last nn.Linear (the classifier), e.g. 'fc'."""
        names = [name for name, module in self.model.named_modules() if isinstance(module, nn.Linear)]
        if not names:
            raise ValueError("the victim has no Linear layer to read labels from")
        return names[-1]

    def diagnostics(self, x: torch.Tensor, probs: torch.Tensor) -> dict[str, object]:
        """Facts recorded with every attack: observed and final dummy gradient norms
        per layer and, on an SNN, each spiking layer's firing rate on the dummy."""
        facts: dict[str, object] = {
            "layout": self.layout.kind,
            "model_init": self.observed.spec.init,
            "observed_grad_norm": {n: float(g.norm()) for n, g in self.target.items()},
        }
        with torch.enable_grad():
            dummy_grad = self.candidate(x.detach(), probs.detach(), create_graph=False)
        facts["dummy_grad_norm"] = {n: float(g.detach().norm()) for n, g in dummy_grad.items()}
        if self.spiking:
            facts["firing_rates"] = self.model.firing_rates(x.detach())
        return facts


def relaxed_snn_logits(params: dict[str, torch.Tensor], x: torch.Tensor, spec, temperature: float) -> torch.Tensor:
    """The attacker's relaxed SNN-LeNet of V victims: every spike step H(h - 1) becomes
    sigmoid((h - 1) / temperature), with the same IF/LIF dynamics and hard reset
    (``v = (1 - s) h``) as ``fedsnn.task.models.stacked_logits``; as the temperature
    goes to 0 it becomes that exact model (tested).

    params: name -> [V, ...] weights; x: [V, B, C, H, W] static images (replicated
    over ``spec.timesteps``). Returns logits [V, B, K].
    """
    v, b = x.shape[:2]
    steps, neuron = spec.timesteps, spec.neuron

    def conv(h: torch.Tensor, name: str, stride: int) -> torch.Tensor:
        weight, bias = params[f"{name}.weight"], params[f"{name}.bias"]
        return F.conv2d(h, weight.flatten(0, 1), bias.flatten(), stride=stride, padding=weight.shape[-1] // 2,
                        groups=v)

    def train(z: torch.Tensor, constant: bool) -> torch.Tensor:  # z: [T, ...] or one [...] current
        # unbind, not z[t]: each z[t]'s backward would zero-fill a full [T, ...] gradient (cost ~ T^2)
        currents = [z] * steps if constant else z.unbind(0)
        potential, out = torch.zeros_like(currents[0]), []
        for current in currents:
            h = potential + current if neuron == "if" else potential + (current - potential) / 2.0
            s = torch.sigmoid((h - 1.0) / temperature)
            potential = (1.0 - s) * h
            out.append(s)
        return torch.stack(out)

    s = train(conv(x.transpose(0, 1).flatten(1, 2), "conv1", 2), constant=True)  # [T, B, V*12, 14, 14]
    for name, stride in (("conv2", 2), ("conv3", 1)):
        z = conv(s.flatten(0, 1), name, stride)
        s = train(z.view(steps, b, *z.shape[1:]), constant=False)
    rate = s.mean(0).reshape(b, v, -1).permute(1, 2, 0)  # [V, hidden, B]
    return torch.baddbmm(params["fc.bias"][:, :, None], params["fc.weight"], rate).transpose(1, 2)
