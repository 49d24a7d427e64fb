"""Offline RL algorithms, one file each, registered by name (plug-ins through the
``offbench.algorithms`` entry point group)."""

from offbench.algos import awac, bc, bcq, bear, brac, cql, dt, gpt_bc, iql, qrdqn, random, rem, td3bc, weighted_bc  # noqa: F401  (they register themselves)
from offbench.algos.base import ALGORITHMS, Algorithm
from offbench.algos.config import AlgoConfig

__all__ = ["ALGORITHMS", "AlgoConfig", "Algorithm", "algorithm_names", "get_algorithm"]


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered as ``name``: a built-in or a plug-in's entry point."""
    return ALGORITHMS.get(name)


def algorithm_names() -> list[str]:
    """Every registered algorithm name, plug-ins included."""
    return ALGORITHMS.names()
