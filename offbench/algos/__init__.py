"""Algorithms: one file each on the shared training loop (see ``base.py`` for the protocol)."""

from offbench.algos.base import ALGORITHMS, AlgoConfig, Algorithm, algorithm_names, get_algorithm

__all__ = ["ALGORITHMS", "AlgoConfig", "Algorithm", "algorithm_names", "get_algorithm"]
