"""Reproduction of the GAMIN-SNN paper (Tables I-II, Figs 3-4) on the fc targets."""
