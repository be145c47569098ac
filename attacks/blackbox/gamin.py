"""GAMIN: black-box model inversion by a generator and a surrogate trained in turns.

For each target class c, one iteration:

1. X_G = G(z), z ~ N(0, 1) [B, Z]; X_S [B, C, H, W] random probes, N(0, 1) by
   default (``probes``); both go to the target in one query of 2B samples ->
   scores Y_G, Y_S [B, K].
2. Surrogate step: L_S = L(X_S, Y_S) - k_t * L(X_G, Y_G), where L is the
   soft-label cross-entropy between target scores and surrogate logits
   (BEGAN's boundary equilibrium: S imitates T on probes while refusing to be
   fooled by G's samples, which stops G from exploiting S's blind spots).
3. k_{t+1} = clip(k_t + lambda_k * (gamma * L(X_S, Y_S) - L(X_G, Y_G)), 0, 1).
4. Generator step, S frozen: CE(S(G(z')), c).

The pair (G, S) with the lowest M_global = L(X_S,Y_S) + |gamma L(X_S,Y_S) - L(X_G,Y_G)|
seen so far is kept (measured before that iteration's updates). Option, off by
default (``warmup=0`` is the paper's rule): ``warmup=N`` ignores M_global for
the first N iterations. Why: at the start both losses are small (the target
gives near-identical scores to every noise input and G's outputs are noise
too), so at small budgets the kept pair is an untrained generator. If the
budget ends before iteration N, the last pair is kept. The attack
stops when the next iteration would exceed ``config.budget`` queries for the
class, or when the oracle raises ``QueryBudgetExhausted`` (its own, global
budget), in which case the remaining classes are skipped.

Probe distribution. The paper says only "random inputs". We default to N(0, 1),
the distribution it names for z, because it is the one that reproduces the
paper: measured on our MNIST FC-3000 ANN (1,000 distillation steps, batch
128, surrogate on probes only), N(0, 1) probes give surrogate test accuracy
A_S 64.3% (paper 68.1) and the target labels them with every class, while
U(0, 1) probes give A_S 13.4% and the target calls almost all of them 3 or 5;
the rate-encoded SNN clamps negative values to 0 and gives A_S 15.0% on N(0, 1)
probes (paper 19.9). With U(0, 1) probes the surrogate never learns what the
target calls a 0 and the generator collapses onto dark saturated images
(``probes="uniform"`` keeps that variant for comparison; the study is
``simulations/gamin/probe_study.py``).

Attack-side metrics (no ground truth): M_global and A_SoG (surrogate accuracy
on the kept generator's samples). ``fedsnn.analysis.gamin_scoring.evaluate_gamin`` adds, for the analysis
only, F_S = 1 - MAE(target scores, surrogate softmax) on random inputs, A_S
(surrogate accuracy on a labelled test set) and A_T (target accuracy on the
inverted samples). It queries the target through a separate, unbudgeted
evaluation oracle, so evaluation never spends the attacker's budget.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from attacks.core import DEVICES
from attacks.blackbox.nets import ARCHITECTURES, build_pair
from attacks.blackbox.oracle import QueryBudgetExhausted, QueryOracle
from fedsnn.errors import ConfigError
from fedsnn.task.models import soft_cross_entropy

PAPER_BUDGET = 1_280_000  # 20,000 iterations' worth of 64-sample batches in the paper
PROBES = ("normal", "uniform")


@dataclass(frozen=True)
class GaminConfig:
    """GAMIN hyperparameters (paper values by default); ``budget`` is queries per class."""

    budget: int = PAPER_BUDGET
    batch_size: int = 64
    z_dim: int = 100
    lr: float = 1e-4
    k0: float = 0.001
    lambda_k: float = 0.001
    gamma: float = 0.5
    architecture: str = "fc"
    num_samples: int = 64
    seed: int = 0
    log_every: int = 0
    warmup: int = 0
    probes: str = "normal"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("gamin-batch-size", self.batch_size, "an integer >= 1")
        if self.budget < 2 * self.batch_size:
            raise ConfigError("gamin-budget", self.budget, f"an integer >= 2 * batch size ({2 * self.batch_size})")
        if self.architecture not in ARCHITECTURES:
            raise ConfigError("gamin-architecture", self.architecture, ARCHITECTURES)
        if not 0.0 <= self.k0 <= 1.0:
            raise ConfigError("gamin-k0", self.k0, "a float in [0, 1]")
        for key, value in (("gamin-lr", self.lr), ("gamin-lambda-k", self.lambda_k), ("gamin-gamma", self.gamma)):
            if value <= 0:
                raise ConfigError(key, value, "a float > 0")
        if self.device not in DEVICES:
            raise ConfigError("gamin-device", self.device, DEVICES)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("gamin-device", self.device, "'cpu' (no CUDA device is visible)")
        if self.probes not in PROBES:
            raise ConfigError("gamin-probes", self.probes, PROBES)
        if self.warmup < 0:
            raise ConfigError("gamin-warmup", self.warmup, "an integer >= 0 (0 = the paper's rule)")
        if self.z_dim < 1 or self.num_samples < 1:
            raise ConfigError("gamin-z-dim/num-samples", (self.z_dim, self.num_samples), "integers >= 1")


@dataclass(frozen=True)
class GaminResult:
    """One class's attack. Metrics are percentages except m_global and fidelity.

    samples: [num_samples, C, H, W] from the kept generator (fixed seeded z).
    status: "ok", or "invalid-target" when the target answered non-finite scores
    (the attack stops at once; its samples are then the untrained generator's).
    fidelity, surrogate_accuracy, target_accuracy stay None until
    ``fedsnn.analysis.gamin_scoring.evaluate_gamin``.
    """

    target_class: int
    m_global: float
    combined_accuracy: float
    queries: int
    iterations: int
    best_iteration: int
    wall_time_s: float
    samples: torch.Tensor = field(repr=False)
    generator: nn.Module = field(repr=False, compare=False)
    surrogate: nn.Module = field(repr=False, compare=False)
    oracle_exhausted: bool = False
    status: str = "ok"
    reason: str = ""
    fidelity: float | None = None
    surrogate_accuracy: float | None = None
    target_accuracy: float | None = None


def random_probes(n: int, input_shape: Sequence[int], distribution: str, generator: torch.Generator) -> torch.Tensor:
    """[n, *input_shape] random target inputs X_S: N(0, 1) ('normal') or U(0, 1) ('uniform')."""
    if distribution == "normal":
        return torch.randn(n, *input_shape, generator=generator)
    if distribution == "uniform":
        return torch.rand(n, *input_shape, generator=generator)
    raise ConfigError("gamin-probes", distribution, PROBES)


def update_k(k: float, loss_s: float, loss_g: float, gamma: float, lambda_k: float) -> float:
    """k_{t+1} = clip(k_t + lambda_k (gamma L_S - L_G), 0, 1)."""
    return min(1.0, max(0.0, k + lambda_k * (gamma * loss_s - loss_g)))


def m_global(loss_s: float, loss_g: float, gamma: float) -> float:
    """BEGAN convergence measure L_S + |gamma L_S - L_G| (lower is better)."""
    return loss_s + abs(gamma * loss_s - loss_g)


def fidelity(target_scores: torch.Tensor, surrogate_logits: torch.Tensor) -> float:
    """F_S = 1 - mean over batch and classes of |y - softmax(s)|; inputs [B, K]."""
    return 1.0 - (target_scores - surrogate_logits.softmax(-1)).abs().mean().item()


def percent_correct(predicted: torch.Tensor, expected: torch.Tensor | int) -> float:
    return 100.0 * (predicted == expected).float().mean().item()


def attack_class(oracle: QueryOracle, config: GaminConfig, target_class: int,
                 log: Callable[[str], None] = print) -> GaminResult:
    """Run GAMIN for one class until ``config.budget`` or the oracle's own budget is spent."""
    start, used0 = time.perf_counter(), oracle.used
    torch.manual_seed(config.seed + target_class)
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + target_class)
    device = torch.device(config.device)
    g_net, s_net = (net.to(device) for net in
                    build_pair(config.architecture, config.z_dim, oracle.input_shape, oracle.num_classes))
    opt_g = torch.optim.Adam(g_net.parameters(), lr=config.lr)
    opt_s = torch.optim.Adam(s_net.parameters(), lr=config.lr)
    b, k = config.batch_size, config.k0
    labels = torch.full((b,), target_class, dtype=torch.long, device=device)

    def noise(n: int) -> torch.Tensor:  # drawn on the CPU generator: the same z on every device
        return torch.randn(n, config.z_dim, generator=gen).to(device)

    best = (float("inf"), -1, copy.deepcopy(g_net.state_dict()), copy.deepcopy(s_net.state_dict()))
    iteration, exhausted, m, reason = 0, False, float("inf"), ""
    while (iteration + 1) * 2 * b <= config.budget:
        with torch.no_grad():
            x_g = g_net(noise(b))
        x_s = random_probes(b, oracle.input_shape, config.probes, gen).to(device)
        try:
            y = oracle.query(torch.cat([x_g, x_s]))  # [2B, K]: generated then random
        except QueryBudgetExhausted:
            exhausted = True
            break
        if not torch.isfinite(y).all():
            reason = f"target answered non-finite scores at iteration {iteration} ({int((~torch.isfinite(y)).sum())} values)"
            break
        logits = s_net(torch.cat([x_g, x_s]))
        loss_g, loss_s = soft_cross_entropy(logits[:b], y[:b]), soft_cross_entropy(logits[b:], y[b:])
        m = m_global(loss_s.item(), loss_g.item(), config.gamma)
        if iteration >= config.warmup and m < best[0]:
            best = (m, iteration, copy.deepcopy(g_net.state_dict()), copy.deepcopy(s_net.state_dict()))
        opt_s.zero_grad()
        (loss_s - k * loss_g).backward()
        opt_s.step()
        k = update_k(k, loss_s.item(), loss_g.item(), config.gamma, config.lambda_k)
        s_net.requires_grad_(False)
        loss_gen = F.cross_entropy(s_net(g_net(noise(b))), labels)
        opt_g.zero_grad()
        loss_gen.backward()
        opt_g.step()
        s_net.requires_grad_(True)
        iteration += 1
        if config.log_every and iteration % config.log_every == 0:
            log(f"class {target_class} it {iteration}: L_S {loss_s.item():.4f} L_G {loss_g.item():.4f} "
                f"k {k:.4f} M {m:.4f} gen {loss_gen.item():.4f}")
    if best[1] >= 0:  # else nothing passed the warm-up: keep the last pair
        g_net.load_state_dict(best[2])
        s_net.load_state_dict(best[3])
    else:
        best = (m, iteration - 1, None, None)
    g_net.eval().cpu()  # results live on the CPU, whatever device trained them
    s_net.eval().cpu()
    with torch.no_grad():
        samples = g_net(torch.randn(config.num_samples, config.z_dim, generator=torch.Generator().manual_seed(config.seed)))
        combined = percent_correct(s_net(samples).argmax(-1), target_class)
    return GaminResult(target_class, best[0], combined, oracle.used - used0, iteration, best[1],
                       time.perf_counter() - start, samples, g_net, s_net, exhausted,
                       "invalid-target" if reason else "ok", reason)


def run_gamin(oracle: QueryOracle, config: GaminConfig, classes: Sequence[int] | None = None,
              log: Callable[[str], None] = print) -> list[GaminResult]:
    """Attack every class in ``classes`` (default: all) in turn; one result per class attacked.

    If the oracle's own budget runs out, the current class keeps its best pair
    and the remaining classes are skipped (logged), so a server can cap the
    total cost of an attack with the oracle alone. A target that answers
    non-finite scores ends the attack too: the class is returned with status
    "invalid-target" and no other class is tried.
    """
    chosen = list(range(oracle.num_classes)) if classes is None else list(classes)
    for c in chosen:
        if not 0 <= c < oracle.num_classes:
            raise ConfigError("gamin-classes", c, f"class indices in [0, {oracle.num_classes})")
    results = []
    for c in chosen:
        r = attack_class(oracle, config, c, log)
        results.append(r)
        if r.status != "ok":
            log(f"class {c}: {r.status} ({r.reason}); skipping {len(chosen) - len(results)} classes")
            break
        if r.oracle_exhausted:
            log(f"oracle budget exhausted during class {c}; skipping {len(chosen) - len(results)} classes")
            break
        log(f"class {c}: M_global {r.m_global:.4f} A_SoG {r.combined_accuracy:.1f} "
            f"({r.iterations} it, {r.queries} queries, {r.wall_time_s:.1f} s)")
    return results
