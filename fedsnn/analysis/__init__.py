"""Floor 3, analysis: the only code that scores against ground truth (metrics, judges, scoring).

It may import the task and the attacks' result types; it never takes a
RunConfig (the experiment floor above hands it tensors and judges).
"""
