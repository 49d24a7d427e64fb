"""Batched evaluation: many episodes stepped in lock step, one policy call per step for all."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from offbench.algos.base import Policy
from offbench.data.spec import DatasetSpec
from offbench.envs.factory import make_env


@dataclass
class Evaluation:
    """Returns of ``len(returns)`` episodes at one target return (None: not return-conditioned)."""

    target_return: float | None
    returns: np.ndarray
    lengths: np.ndarray

    def scores(self, spec: DatasetSpec) -> np.ndarray:
        return np.array([spec.normalize(r) for r in self.returns])

    def as_record(self, spec: DatasetSpec) -> dict:
        s = self.scores(spec)
        return {"target_return": self.target_return, "episodes": int(len(self.returns)),
                "return_mean": float(self.returns.mean()), "return_std": float(self.returns.std()),
                "score_mean": float(s.mean()), "score_std": float(s.std()),
                "length_mean": float(self.lengths.mean())}


def rollout(policy: Policy, spec: DatasetSpec, episodes: int, seed: int, target_return: float | None = None,
            parallel: bool = False) -> Evaluation:
    """Run ``episodes`` episodes of ``spec``'s environment with ``policy``, all at once.

    The episodes are the sub-environments of one gymnasium vector env (``parallel``: each in its
    own process, ``AsyncVectorEnv``), stepped together with one batched policy call per step.
    Episode ``i`` is reset with seed ``seed + i``. A finished episode stays in the batch until all
    are done (gymnasium resets it; its further results are ignored), so the policy always sees
    every environment.
    """
    fns = [lambda: make_env(spec) for _ in range(episodes)]
    vec = gym.vector.AsyncVectorEnv(fns) if parallel else gym.vector.SyncVectorEnv(fns)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    done = np.zeros(episodes, dtype=bool)
    try:
        obs, _ = vec.reset(seed=[seed + i for i in range(episodes)])
        policy.reset(episodes)
        while not done.all():
            actions = policy.act(obs)
            obs, rewards, terminated, truncated, _ = vec.step(actions)
            rewards = np.where(done, 0.0, rewards)
            lengths += ~done
            returns += rewards
            policy.observe(rewards)
            done |= terminated | truncated
    finally:
        vec.close()
    return Evaluation(target_return, returns, lengths)
