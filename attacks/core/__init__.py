"""The attacker's vocabulary: what it observes, how it is configured, what it returns.

Every attack, white-box or black-box, one-at-a-time or batched, speaks these
three types; they are the threat boundary in code (``ObservedUpdate`` has no
field through which a client's data could enter).
"""

from attacks.core.auxiliary import AuxiliaryData
from attacks.core.config import (CLAMPS, DEVICES, DUMMY_LAYOUTS, FEDAVG_HANDLINGS, OPTIMIZERS, THRESHOLDINGS,
                                 TIME_GUARD, AttackConfig)
from attacks.core.observation import MODALITIES, MODES, ObservedUpdate
from attacks.core.result import STATUSES, Reconstruction

__all__ = [
    "AuxiliaryData", "AttackConfig", "ObservedUpdate", "Reconstruction", "CLAMPS", "DEVICES", "DUMMY_LAYOUTS", "FEDAVG_HANDLINGS",
    "OPTIMIZERS", "THRESHOLDINGS", "TIME_GUARD", "MODALITIES", "MODES", "STATUSES",
]
