"""One episode of a uniform-random policy in a discrete-action environment, step by step (the
behaviour policy of the Key-to-Door datasets and of the generated Atari sets)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np


def random_episode(env: gym.Env, rng: np.random.Generator, seed: int) -> Iterator[tuple[Any, int, float, bool, bool]]:
    """Reset with ``seed``, then yield ``(observation, action, reward, terminated, truncated)`` per
    step, each action drawn from ``rng`` (one draw per step, so a stream of episodes is
    reproducible from one generator)."""
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        action = int(rng.integers(env.action_space.n))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        yield obs, action, float(reward), bool(terminated), bool(truncated)
        obs, done = next_obs, terminated or truncated
