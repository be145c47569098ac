"""The batched engine: many victims in one optimisation (DLG and iDLG), the rest spread over processes."""

from attacks.batched.engine import MAX_VICTIMS, reconstruct_many
from attacks.batched.matcher import StackedMatcher
from attacks.batched.parallel import default_workers

__all__ = ["MAX_VICTIMS", "StackedMatcher", "reconstruct_many", "default_workers"]
