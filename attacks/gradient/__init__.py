"""White-box gradient inversion: the matching core, its optimisation loop and one attack per file.

``dlg``, ``idlg``, ``grnn``, ``analytic`` (closed-form last-layer features),
``learned`` (decoder trained on declared auxiliary data) and ``ig``
(Inverting Gradients) each expose ``reconstruct(observed, config) ->
Reconstruction``; ``matching`` builds the victim and the objective they share,
``optimise`` the loop and the guarded runner, ``thresholding`` the spike
binarisation of the FL-SNN paper's Algorithms 1 and 2.
"""

from attacks.gradient import analytic, dlg, grnn, idlg, ig, learned
from attacks.gradient.idlg import infer_labels, mean_prediction
from attacks.gradient.matching import DummyLayout, GradientMatcher, layout_for
from attacks.gradient.optimise import Attempt, Trace, dummy_attempt, finish, optimise, run_attack
from attacks.gradient.thresholding import ALGORITHMS, TAUS, binarise, sweep

__all__ = [
    "analytic", "dlg", "grnn", "idlg", "ig", "learned", "infer_labels", "mean_prediction", "DummyLayout", "GradientMatcher", "layout_for",
    "Attempt", "Trace", "dummy_attempt", "finish", "optimise", "run_attack", "ALGORITHMS", "TAUS", "binarise",
    "sweep",
]
