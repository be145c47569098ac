"""DLG (Zhu et al., 2019): optimise a dummy input and a dummy soft label jointly.

The label is softmax of free logits [B, K] (N(0, 1) init) and enters the
soft-label cross-entropy; the dummy input is U(0.45, 0.55) (images) or
|N(0, 0.1)| (events). When the observation provides the labels, they are used
instead of the free label (the attacker knows them).

DLG is sensitive to the dummy seed: on 5 real MNIST digits (LeNet, one model
seed per digit) seed 0 rebuilt 2/5; seeds 1 and 2 rescued 2 of the 3 failures.
A failed run typically ends with L-BFGS stuck (loss unchanged, status 'budget',
reason 'stalled'), so ``restarts=3`` costs little and is advisable.
"""

from __future__ import annotations

from attacks.core import AttackConfig, ObservedUpdate, Reconstruction
from attacks.gradient.optimise import LabelInference, dummy_attack_attempt, run_attack

INFER_LABELS: LabelInference | None = None  # DLG learns a free soft label unless the labels are declared


def reconstruct(observed: ObservedUpdate, config: AttackConfig) -> Reconstruction:
    """Rebuild the client's batch from its update by DLG.

    Returns a Reconstruction with samples [B, C, H, W] (images) or
    [B, T, C, H, W] (events) and labels = argmax of the learnt soft label.
    Never raises: problems become status 'diverged' or 'failed'.
    """
    return run_attack(observed, config, dummy_attack_attempt(config, INFER_LABELS), "dlg")
