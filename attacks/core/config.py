"""Hyperparameters of a gradient-inversion attack, validated once at the edge.

Defaults are the faithful DLG/iDLG setting of REFERENCE.md section 3:
L-BFGS, lr 1, 300 steps of at most 20 evaluations, stop when the matching
loss drops below 1e-6. GRNN keeps its own optimiser settings (RMSprop lr 1e-4,
momentum 0.99, TV prior 1e-3, 1000 iterations).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from attacks.core.auxiliary import AuxiliaryData
from fedsnn.errors import ConfigError

OPTIMIZERS = ("lbfgs", "adam")
THRESHOLDINGS = ("none", "post", "in")
FEDAVG_HANDLINGS = ("average-gradient", "replay")
DUMMY_LAYOUTS = ("static", "frames")
DEVICES = ("cpu", "cuda")
CLAMPS = ("final", "step", "none")
KERNELS = ("auto", "torch")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.1}
# How a record says the wall-clock safety guard ended an attack (status 'budget'): results then depend on machine speed.
TIME_GUARD = "time guard fired"


@dataclass(frozen=True)
class AttackConfig:
    """Settings shared by every attack (GRNN reads its own ``grnn_*`` fields).

    Attributes
    ----------
    optimizer : 'lbfgs' | 'adam'
        Optimiser of the dummy input (DLG, iDLG).
    lr : float | None
        Its learning rate; None (the default) takes the optimiser's own,
        ``DEFAULT_LR``: 1.0 for L-BFGS (DLG's setting), 0.1 for Adam.
    iterations : int
        Optimiser steps per restart (L-BFGS: each step makes up to ``max_eval``
        closure evaluations).
    max_eval : int
        L-BFGS ``max_iter`` and ``max_eval`` per step.
    tolerance : float
        Stop with status 'converged' once the matching loss is below it.
    restarts : int
        Independent dummy initialisations; the one with the lowest loss is kept.
    seed : int
        Seed of the dummy initialisation (restart r uses seed + r).
    clamp : 'final' | 'step' | 'none'
        Where image dummies are clamped to [0, 1] (spike intensities only to
        >= 0): on the returned reconstruction ('final'), after every optimiser
        update ('step', a projected method: suits Adam) or never. 'final' is
        the default because projecting after every L-BFGS step breaks its
        curvature pairs: iDLG then stalled on 3/3 MNIST digits (MSE 1e-3 to
        8e-3) that it rebuilt to MSE < 2e-5 with 'final'.
    thresholding : 'none' | 'post' | 'in'
        Binarise spike dummies after the attack (Algorithm 1) or after every
        update (Algorithm 2), with threshold ``tau``.
    tau : float
        Binarisation threshold in (0, 1).
    fedavg_handling : 'average-gradient' | 'replay'
        Match a fedavg update as one mean gradient at the global weights, or
        replay the client's local SGD steps differentiably on the dummy batch.
    dummy_layout : 'static' | 'frames'
        SNN on static images: one [B, C, H, W] dummy replicated over T by the
        model, or a free [T, B, C, H, W] dummy per timestep.
    time_budget_s : float | None
        Wall-clock safety guard per attack, off (None) by default: attacks
        stop on iterations, evaluations and ``tolerance``, so the same seed
        gives the same record on any machine. When the guard fires, status is
        'budget' and the reason starts with ``TIME_GUARD``.
    stall_patience : int
        Stop after this many optimiser steps without any change of the loss
        (L-BFGS on an SNN stalls once no spike flips); 0 disables the check.
    grnn_iterations, grnn_lr, grnn_momentum, grnn_tv_weight, grnn_noise_dim
        GRNN's own optimisation (RMSprop) and generator settings.
    max_samples : int
        Rebuild at most this many samples (0: as many as the update covers,
        ``ObservedUpdate.reconstruction_size``). A curious server facing a
        multi-step FedAvg update over thousands of samples rebuilds a few.
    device : 'cpu' | 'cuda'
    auxiliary : AuxiliaryData | None
        Data the attacker declares it holds (the learned attack trains on it;
        every attack may use its class means as the label-only control). Not
        compared or hashed: two configs differ by settings, not by data; its
        ``source`` is recorded with every result that used it.
    learned_samples : int
        Learned attack: auxiliary samples drawn for the simulated client updates.
    learned_epochs, learned_hidden, learned_lr : int, int, float
        Learned attack: decoder epochs over the simulated pairs, hidden width, Adam lr.
    learned_simulations : int
        Learned attack, multi-step (fedavg) updates: simulated clients (each
        replays the declared local SGD); fedsgd is simulated in closed form.
    ig_tv_weight : float
        Inverting Gradients: weight of the total-variation prior.
    relax_spikes : bool
        SNN victims, Inverting Gradients: the attacker's own forward replaces the
        spike step by sigmoid((v - 1) / temperature), annealed from
        ``relax_temperature`` to the exact step over the first 3/4 of the run;
        the last quarter runs on the exact model.
    relax_temperature : float
        Starting temperature of the relaxation.
    kernel : 'auto' | 'torch'
        The batched engine's numba kernels: 'auto' runs them where they apply
        and numba imports (``attacks.batched.lenet_kernel``: LeNet on static
        images, one sample per victim, ~2x cheaper per evaluation;
        ``attacks.batched.lbfgs_kernel``: the L-BFGS recursion on float32 CPU
        states), PyTorch elsewhere; 'torch' always the PyTorch forms (the
        references the kernels are tested against).
    """

    optimizer: str = "lbfgs"
    lr: float | None = None
    iterations: int = 300
    max_eval: int = 20
    tolerance: float = 1e-6
    restarts: int = 1
    seed: int = 0
    clamp: str = "final"
    thresholding: str = "none"
    tau: float = 0.5
    fedavg_handling: str = "average-gradient"
    dummy_layout: str = "static"
    time_budget_s: float | None = None
    stall_patience: int = 5
    grnn_iterations: int = 1000
    grnn_lr: float = 1e-4
    grnn_momentum: float = 0.99
    grnn_tv_weight: float = 1e-3
    grnn_noise_dim: int = 128
    max_samples: int = 0
    device: str = "cpu"
    auxiliary: AuxiliaryData | None = field(default=None, compare=False, repr=False)
    learned_samples: int = 5000
    learned_epochs: int = 30
    learned_hidden: int = 1024
    learned_lr: float = 1e-3
    learned_simulations: int = 64
    ig_tv_weight: float = 1e-4
    relax_spikes: bool = False
    relax_temperature: float = 0.5
    kernel: str = "auto"

    def __post_init__(self) -> None:
        if self.lr is None and self.optimizer in DEFAULT_LR:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])
        choices = {
            "optimizer": OPTIMIZERS, "thresholding": THRESHOLDINGS, "fedavg_handling": FEDAVG_HANDLINGS,
            "dummy_layout": DUMMY_LAYOUTS, "device": DEVICES,
            "clamp": CLAMPS, "kernel": KERNELS,
        }
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ConfigError(key, getattr(self, key), valid)
        for key in ("lr", "grnn_lr", "learned_lr", "relax_temperature"):
            if not getattr(self, key) > 0:
                raise ConfigError(key, getattr(self, key), "a positive float")
        for key in ("iterations", "max_eval", "restarts", "grnn_iterations", "grnn_noise_dim", "learned_samples",
                    "learned_epochs", "learned_hidden", "learned_simulations"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(key, getattr(self, key), "a positive integer")
        if not isinstance(self.max_samples, int) or self.max_samples < 0:
            raise ConfigError("max_samples", self.max_samples, "0 (all) or a positive integer")
        if not isinstance(self.stall_patience, int) or self.stall_patience < 0:
            raise ConfigError("stall_patience", self.stall_patience, "a non-negative integer")
        if not self.tolerance >= 0:
            raise ConfigError("tolerance", self.tolerance, "a non-negative float")
        if not 0 < self.tau < 1:
            raise ConfigError("tau", self.tau, "a float in (0, 1)")
        if not 0 <= self.grnn_momentum < 1:
            raise ConfigError("grnn_momentum", self.grnn_momentum, "a float in [0, 1)")
        if not self.ig_tv_weight >= 0:
            raise ConfigError("ig_tv_weight", self.ig_tv_weight, "a non-negative float")
        if self.auxiliary is not None and not isinstance(self.auxiliary, AuxiliaryData):
            raise ConfigError("auxiliary", type(self.auxiliary).__name__, "None or an AuxiliaryData")
        if not self.grnn_tv_weight >= 0:
            raise ConfigError("grnn_tv_weight", self.grnn_tv_weight, "a non-negative float")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError("time_budget_s", self.time_budget_s, "None or a positive number of seconds")
