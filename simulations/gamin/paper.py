"""Values printed in the GAMIN-SNN paper (Poursiami et al.), Tables I and II."""

from __future__ import annotations

TABLE_I = {("mnist", "ann"): 97.71, ("mnist", "snn"): 97.67, ("att-faces", "ann"): 95.00, ("att-faces", "snn"): 91.25}

# (M_global mean, std), F_S, (A_S mean, std), A_SoG, A_T; the +/- is read as across classes.
TABLE_II = {
    ("mnist", "ann"): ((1.0371, 0.12), 0.8929, (68.13, 6.9), 100.0, 100.0),
    ("mnist", "snn"): ((1.4904, 0.58), 0.9541, (19.88, 4.7), 70.0, 70.0),
    ("att-faces", "ann"): ((3.4326, 0.33), 0.9868, (29.32, 6.6), 92.5, 97.5),
    ("att-faces", "snn"): ((3.9378, 0.65), 0.9948, (6.18, 4.5), 37.5, 49.2),
}
