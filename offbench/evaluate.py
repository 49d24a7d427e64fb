"""Batched evaluation: many episodes stepped in lock step, one policy call per step for all."""

from __future__ import annotations

from dataclasses import dataclass

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


def rollout(policy: Policy, spec: DatasetSpec, episodes: int, seed: int, target_return: float | None = None) -> Evaluation:
    """Run ``episodes`` episodes of ``spec``'s environment with ``policy``, all at once.

    Episode ``i`` is reset with seed ``seed + i``. Finished episodes stay in the batch (their
    actions are ignored) so the policy always sees every environment.
    """
    envs = [make_env(spec) for _ in range(episodes)]
    first = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    obs = np.stack(first)
    policy.reset(episodes)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    done = np.zeros(episodes, dtype=bool)
    while not done.all():
        actions = policy.act(obs)
        rewards = np.zeros(episodes)
        for i in np.flatnonzero(~done):
            o, r, terminated, truncated, _ = envs[i].step(actions[i])
            obs[i], rewards[i] = o, r
            lengths[i] += 1
            done[i] = terminated or truncated
        returns += rewards
        policy.observe(rewards)
    for env in envs:
        env.close()
    return Evaluation(target_return, returns, lengths)
