"""The one registry of white-box attacks: name -> ``reconstruct(observed, config)``.

``ATTACK_NAMES`` (the run-config choices) is derived from it. ``LABEL_INFERENCE``
gives, for each dummy attack the batched engine (``attacks.batched``) runs many
victims at a time, the attack's own label inference (``INFER_LABELS`` of its
module, the one its one-at-a-time ``reconstruct`` uses too; None: it learns a
soft label); ``BATCHED`` is their names. ``GROUPED`` names the attacks that run a whole group of victims through their
own ``reconstruct_group`` (the learned attack shares one decoder per round;
Inverting Gradients stacks its victims); ``attacks.reconstruct_all`` picks the
right path. The rest run one victim at a time
through ``get_attack``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from attacks.core import AttackConfig, ObservedUpdate, Reconstruction
from attacks.gradient import LabelInference, analytic, dlg, grnn, idlg, ig, learned
from fedsnn.errors import ConfigError

Attack = Callable[[ObservedUpdate, AttackConfig], Reconstruction]
GroupAttack = Callable[[Sequence[ObservedUpdate], AttackConfig], list[Reconstruction]]

ATTACKS: dict[str, Attack] = {
    "dlg": dlg.reconstruct, "idlg": idlg.reconstruct, "grnn": grnn.reconstruct,
    "analytic": analytic.reconstruct, "learned": learned.reconstruct, "ig": ig.reconstruct,
}
ATTACK_NAMES: tuple[str, ...] = tuple(ATTACKS)
LABEL_INFERENCE: dict[str, LabelInference | None] = {"dlg": dlg.INFER_LABELS, "idlg": idlg.INFER_LABELS}
BATCHED: frozenset[str] = frozenset(LABEL_INFERENCE)
GROUPED: dict[str, GroupAttack] = {"learned": learned.reconstruct_group, "ig": ig.reconstruct_group}
NEEDS_AUXILIARY: frozenset[str] = frozenset({"learned"})
# Attacks that recover labels and last-layer features, not inputs (no image to score; "analytic" feeds "learned").
FEATURES_ONLY: frozenset[str] = frozenset({"analytic"})


def get_attack(name: str) -> Attack:
    """The ``reconstruct`` function of attack ``name``; ConfigError lists the valid names."""
    if name not in ATTACKS:
        raise ConfigError("attack", name, tuple(ATTACKS))
    return ATTACKS[name]
