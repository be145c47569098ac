"""White-box gradient-inversion attacks of a curious server (the attacker's room).

Every attack has the same entry point::

    reconstruct(observed: ObservedUpdate, config: AttackConfig) -> Reconstruction

It sees only what a server observes (``ObservedUpdate``) and never raises:
failures come back as a status. Scoring against ground truth lives in
``fedsnn.metrics``, outside this package.
"""

from __future__ import annotations

from collections.abc import Callable

from attacks import dlg, grnn, idlg
from attacks.config import AttackConfig
from attacks.observation import ObservedUpdate
from attacks.result import Reconstruction
from fedsnn.errors import ConfigError

Attack = Callable[[ObservedUpdate, AttackConfig], Reconstruction]

ATTACKS: dict[str, Attack] = {"dlg": dlg.reconstruct, "idlg": idlg.reconstruct, "grnn": grnn.reconstruct}

__all__ = ["ATTACKS", "Attack", "AttackConfig", "ObservedUpdate", "Reconstruction", "get_attack", "reconstruct_many"]


def get_attack(name: str) -> Attack:
    """The ``reconstruct`` function of attack ``name``; ConfigError lists the valid names."""
    if name not in ATTACKS:
        raise ConfigError("attack", name, tuple(ATTACKS))
    return ATTACKS[name]


from attacks.batched import reconstruct_many  # noqa: E402 - the fast path builds on the registry above
