"""GRNN (Ren et al., 2022): train a generator whose output matches the update.

Unknowns are a generator's weights, not pixels. A fixed noise batch z [B, 128]
goes through (Ren et al.'s generator, sized for 32x32 outputs)::

    z [B, 128, 1, 1] -> ConvTranspose(128 -> 256, k4) -> GLU     [B, 128, 4, 4]
      -> n x [nearest up x2 -> Conv3x3 -> BatchNorm -> GLU]      channels halve,
         the last block emits the output channels                 [B, C', 4 * 2^n, 4 * 2^n]
      -> Sigmoid -> centre crop to (H, W)                         e.g. 32 -> 28 for MNIST

with n = ceil(log2(max(H, W) / 4)); C' = C for images, T * C for per-timestep
dummies (frames, events), reshaped to [T, B, C, H, W]. A label branch
Linear(128 -> K) + softmax gives the soft label unless labels are known.
Loss = gradient distance (``matching``) + ``grnn_tv_weight`` * TV(x), where TV
is the mean absolute difference of neighbouring pixels; RMSprop (lr 1e-4,
momentum 0.99), 1000 iterations, weights N(0, 0.02).

GRNN stays one victim at a time (``attacks.reconstruct_many`` runs it alone,
spread over worker processes). Batching pays where a victim's step is mostly
per-call overhead, as DLG's 794 unknowns on a ~4 MFLOP LeNet evaluation. Here
each victim owns a generator of ~710k weights (MNIST: stem 524k, first block
147k) whose forward alone is ~20M multiply-adds at B = 1, five times a whole
LeNet matching evaluation, and RMSprop touches all 710k weights every step:
a step is compute- and memory-bound already, so stacking 64 generators
(grouped transposed convs, per-victim BatchNorm statistics) would save little
beyond what one process per core gives.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attacks.core import AttackConfig, ObservedUpdate, Reconstruction
from attacks.gradient.matching import GradientMatcher
from attacks.gradient.optimise import Attempt, declared_labels, optimise, reported_labels, run_attack

STEM_CHANNELS = 256  # before the GLU halves them
INIT_STD = 0.02


def up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """[N, in, s, s] -> [N, out, 2s, 2s]: nearest upsample, conv3x3 to 2*out, BN, GLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(in_channels, 2 * out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(2 * out_channels),
        nn.GLU(dim=1),
    )


class Generator(nn.Module):
    """noise [B, noise_dim] -> (images [B, channels, H, W] in (0, 1), label logits [B, K])."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, noise_dim: int = 128) -> None:
        super().__init__()
        self.height, self.width = height, width
        blocks = max(1, math.ceil(math.log2(max(height, width) / 4)))
        self.stem = nn.Sequential(nn.ConvTranspose2d(noise_dim, STEM_CHANNELS, 4), nn.GLU(dim=1))
        widths = [STEM_CHANNELS // 2 >> i for i in range(blocks)] + [channels]
        widths = [max(w, channels) for w in widths]
        self.blocks = nn.Sequential(*(up_block(widths[i], widths[i + 1]) for i in range(blocks)))
        self.label_branch = nn.Linear(noise_dim, num_classes)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """GRNN's init: conv/linear weights N(0, 0.02), BN scale N(1, 0.02), biases 0."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, INIT_STD, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, INIT_STD, generator=generator)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.sigmoid(self.blocks(self.stem(noise[:, :, None, None])))
        top, left = (x.shape[-2] - self.height) // 2, (x.shape[-1] - self.width) // 2
        return x[..., top:top + self.height, left:left + self.width], self.label_branch(noise)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of vertical and horizontal neighbours; images [..., H, W]."""
    return (images[..., 1:, :] - images[..., :-1, :]).abs().mean() + (
        images[..., :, 1:] - images[..., :, :-1]
    ).abs().mean()


def grnn_attempt(
    matcher: GradientMatcher, config: AttackConfig, seed: int, deadline: float, labels: torch.Tensor | None
) -> Attempt:
    """Train one generator from seed ``seed``; the Attempt's dummy is its best output."""
    if config.thresholding == "in":
        raise ValueError("thresholding 'in' (Algorithm 2) binarises a dummy after each update; "
                         "GRNN optimises generator weights, so use 'post' or 'none'")
    layout, device = matcher.layout, matcher.device
    channels, height, width = layout.sample_shape
    per_step = layout.kind != "image"  # frames / events: one output channel group per timestep
    out_channels = channels * layout.timesteps if per_step else channels
    rng = torch.Generator().manual_seed(seed)
    net = Generator(out_channels, height, width, matcher.num_classes, config.grnn_noise_dim)
    net.reset_parameters(rng)
    net.to(device).train()
    noise = torch.randn(layout.batch, config.grnn_noise_dim, generator=rng).to(device)
    fixed = None if labels is None else matcher.one_hot(labels)

    def generate() -> tuple[torch.Tensor, torch.Tensor]:
        images, logits = net(noise)  # [B, C', H, W], [B, K]
        if per_step:  # [B, T*C, H, W] -> [T, B, C, H, W]
            images = images.view(layout.batch, layout.timesteps, channels, height, width).transpose(0, 1)
        return images, (logits.softmax(-1) if fixed is None else fixed)

    def objective() -> torch.Tensor:
        images, probs = generate()
        return matcher.loss(images, probs) + config.grnn_tv_weight * total_variation(images)

    with torch.no_grad():
        initial = generate()[0].detach().clone()
    variables = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.RMSprop(variables, lr=config.grnn_lr, momentum=config.grnn_momentum)
    trace = optimise(variables, objective, optimizer, config.grnn_iterations, config.tolerance, deadline,
                     stall_patience=0)
    with torch.no_grad():
        images, probs = generate()
    return Attempt(images.detach(), probs.detach(), reported_labels(probs, labels), trace, initial)


def reconstruct(observed: ObservedUpdate, config: AttackConfig) -> Reconstruction:
    """Rebuild the client's batch from its update by GRNN.

    Returns samples [B, C, H, W] (images) or [B, T, C, H, W] (events); labels
    from the label branch unless ``observed.labels`` is given. ``final_loss``
    includes the TV prior. Never raises: problems become 'diverged' or 'failed'.
    """

    def attempt(matcher: GradientMatcher, seed: int, deadline: float) -> Attempt:
        return grnn_attempt(matcher, config, seed, deadline, declared_labels(observed))

    return run_attack(observed, config, attempt, "grnn")
