"""White-box gradient inversion: the matching core, its optimisation loop and one attack per file.

``dlg``, ``idlg``, ``grnn``, ``analytic`` (closed-form last-layer features),
``learned`` (decoder trained on declared auxiliary data) and ``ig``
(Inverting Gradients) each expose ``reconstruct(observed, config) ->
Reconstruction``; ``matching`` builds the victim and the objective they share,
``optimise`` the one-at-a-time loop and the guarded runner, ``stopping`` the
stop rule and restart choice both loops share, ``thresholding`` the spike
binarisation of the FL-SNN paper's Algorithms 1 and 2.
"""

from attacks.gradient import analytic, dlg, grnn, idlg, ig, learned
from attacks.gradient.idlg import infer_labels, mean_prediction
from attacks.gradient.matching import DummyLayout, GradientMatcher, layout_for
from attacks.gradient.optimise import (LabelInference, choose_labels, declared_labels, dummy_attack_attempt,
                                      dummy_attempt, initial_state, learns_labels, optimise, reported_labels,
                                      run_attack, to_reconstruction)
from attacks.gradient.stopping import (Attempt, StopRule, Trace, dummy_stop_settings, keep_better, restart_due,
                                       time_budget)
from attacks.gradient.thresholding import ALGORITHMS, TAUS, binarise, sweep

__all__ = [
    "analytic", "dlg", "grnn", "idlg", "ig", "learned", "infer_labels", "mean_prediction", "DummyLayout", "GradientMatcher", "layout_for",
    "LabelInference", "choose_labels", "declared_labels", "dummy_attack_attempt", "dummy_attempt", "initial_state",
    "learns_labels", "optimise", "reported_labels", "run_attack", "to_reconstruction", "Attempt", "StopRule", "Trace",
    "dummy_stop_settings", "keep_better", "restart_due", "time_budget", "ALGORITHMS", "TAUS", "binarise", "sweep",
]
