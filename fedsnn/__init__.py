"""fedsnn: how much do clients' updates leak in federated learning, and do SNNs leak less?"""

__version__ = "0.1.0"
