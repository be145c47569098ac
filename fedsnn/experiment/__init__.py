"""Floor 4, the experiment: RunConfig and everything that reads it.

    config       RunConfig, validated once at the edge
    settings     AttackConfig / GaminConfig built from it; the one device resolver
    federation   the federation plan: shards, client steps, global evaluation
    ground_truth the evaluator's re-derivation of a client's batch
    runs, recorder, leakage, reporting   run folders and records, leakage scoring, reports
"""
