"""Black-box model inversion (GAMIN) through a query-counting oracle: no weights, no gradients."""

from attacks.blackbox.gamin import (PAPER_BUDGET, PROBES, GaminConfig, GaminResult, attack_class, fidelity, m_global,
                                    percent_correct, random_probes, run_gamin, update_k)
from attacks.blackbox.nets import ARCHITECTURES, build_pair, fc_surrogate
from attacks.blackbox.oracle import (QueryBudgetExhausted, QueryOracle, invalid_target_reason, oracle_for_classifier,
                                    oracle_for_target)

__all__ = [
    "PAPER_BUDGET", "PROBES", "GaminConfig", "GaminResult", "attack_class", "fidelity", "m_global",
    "percent_correct", "random_probes", "run_gamin", "update_k", "ARCHITECTURES", "build_pair", "fc_surrogate",
    "QueryBudgetExhausted", "QueryOracle", "invalid_target_reason", "oracle_for_classifier", "oracle_for_target",
]
