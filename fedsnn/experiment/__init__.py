"""Floor 4, the experiment: RunConfig and everything that reads it.

    config       RunConfig, validated once at the edge
    settings     AttackConfig / GaminConfig built from it; the one device resolver
    federation   the federation plan: shards, client steps, the global model's test accuracy
    ground_truth the evaluator's re-derivation of a client's batch
    runs         fresh run folders and append-only record files (JSON lines, CSV): the file primitives
    federation_records   a federated run's own records: config.json, partitions.json, metrics per round
    leakage_records      scores each reconstruction against re-derived truth; leakage.jsonl, reconstructions/
    reporting    reports and plots from finished run folders
"""
