"""The attacker's floor: white-box gradient inversion, its batched engine and black-box GAMIN.

Every white-box attack has the same entry point::

    reconstruct(observed: ObservedUpdate, config: AttackConfig) -> Reconstruction

It sees only what a server observes (``ObservedUpdate``) and never raises:
failures come back as a status. Scoring against ground truth lives in
``fedsnn.analysis``, above this floor; this floor imports nothing of the
project but the task's models and the error types.

    attacks.core       ObservedUpdate, AttackConfig, Reconstruction
    attacks.gradient   matching core, DLG, iDLG, GRNN, thresholding
    attacks.batched    many victims per optimisation (``reconstruct_many``)
    attacks.blackbox   query oracle and GAMIN
    attacks.registry   name -> attack, the run-config choices
"""

from attacks.batched import reconstruct_many
from attacks.core import AttackConfig, ObservedUpdate, Reconstruction
from attacks.registry import ATTACK_NAMES, ATTACKS, BATCHED, Attack, get_attack

__all__ = [
    "ATTACKS", "ATTACK_NAMES", "BATCHED", "Attack", "AttackConfig", "ObservedUpdate", "Reconstruction", "get_attack",
    "reconstruct_many",
]
