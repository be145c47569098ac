"""The attacker's floor: white-box gradient inversion, its batched engine and black-box GAMIN.

Every white-box attack has the same entry point::

    reconstruct(observed: ObservedUpdate, config: AttackConfig) -> Reconstruction

It sees only what a server observes (``ObservedUpdate``, plus the auxiliary
data it declares in ``AttackConfig.auxiliary``) and never raises: failures
come back as a status. Scoring against ground truth lives in
``fedsnn.analysis``, above this floor; this floor imports nothing of the
project but the task's models and the error types.

    attacks.core       ObservedUpdate, AttackConfig, Reconstruction, AuxiliaryData
    attacks.gradient   matching core, DLG, iDLG, GRNN, analytic, learned, IG, thresholding
    attacks.batched    many victims per optimisation (``reconstruct_many``)
    attacks.blackbox   query oracle and GAMIN
    attacks.registry   name -> attack, the run-config choices

``reconstruct_all`` runs any registered attack on a list of victims: the
attacks that share work across victims (``GROUPED``: the learned decoder, IG's
stacked optimisation) through their own group entry, the rest through the
batched engine.
"""

from collections.abc import Sequence

from attacks.batched import reconstruct_many
from attacks.core import AttackConfig, AuxiliaryData, ObservedUpdate, Reconstruction
from attacks.registry import (ATTACK_NAMES, ATTACKS, BATCHED, FEATURES_ONLY, GROUPED, NEEDS_AUXILIARY, Attack,
                              get_attack)

__all__ = [
    "ATTACKS", "ATTACK_NAMES", "BATCHED", "FEATURES_ONLY", "GROUPED", "NEEDS_AUXILIARY", "Attack", "AttackConfig", "AuxiliaryData",
    "ObservedUpdate", "Reconstruction", "get_attack", "reconstruct_all", "reconstruct_many",
]


def reconstruct_all(observed: Sequence[ObservedUpdate], config: AttackConfig, attack: str,
                    workers: int = 1) -> list[Reconstruction]:
    """``attack`` on every victim, results in the order of ``observed``.

    Grouped attacks run here in one process (a learned decoder is trained once
    per round and global weights; ``workers`` is not used); the others go
    through ``reconstruct_many`` with ``workers`` processes.
    """
    get_attack(attack)  # ConfigError for an unknown name
    if attack in GROUPED:
        return GROUPED[attack](list(observed), config)
    return reconstruct_many(observed, config, attack, workers=workers)
