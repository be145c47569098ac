"""Floor 1, the federated task: data, models, local training. It knows nothing of being attacked.

    fedsnn.task.data            loaders, shards, the embedded MNIST sample
    fedsnn.task.models          LeNet, SNN-LeNet, their stacked per-victim form, GAMIN targets, encodings
    fedsnn.task.training        the clients' local SGD and the deterministic per-round batches
    fedsnn.task.target_training training the GAMIN targets
"""
