"""The uniform-random policy: the "Random" column of the Decision Transformer paper's tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from offbench.algos.base import ALGORITHMS, AlgoConfig, Algorithm


@dataclass
class RandomConfig(AlgoConfig):
    steps: int = 0
    eval_every: int = 0
    eval_episodes: int = 100


class RandomPolicy:
    """Uniform actions: discrete ``0..n-1`` or a continuous vector in [-1, 1]."""

    def __init__(self, discrete: bool, action_dim: int, generator: torch.Generator) -> None:
        self.discrete, self.action_dim, self.generator = discrete, action_dim, generator

    def reset(self, n: int) -> None:
        pass

    def act(self, observations: np.ndarray) -> np.ndarray:
        n = len(observations)
        if self.discrete:
            return torch.randint(self.action_dim, (n,), generator=self.generator).numpy()
        return (torch.rand((n, self.action_dim), generator=self.generator) * 2 - 1).numpy()

    def observe(self, rewards: np.ndarray) -> None:
        pass


@ALGORITHMS.register("random")
class Random(Algorithm):
    """Uniform-random baseline: nothing to train."""

    Config = RandomConfig
    trainable: ClassVar[bool] = False

    def policy(self, target_return: float | None, generator: torch.Generator) -> RandomPolicy:
        return RandomPolicy(self.discrete, self.action_dim, generator)
