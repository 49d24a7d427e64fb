"""Batched evaluation: many episodes stepped in lock step, one policy call per step for all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from offbench.algos.base import Policy
from offbench.data.spec import DatasetSpec
from offbench.envs.factory import make_env
from offbench.errors import OffbenchError


@dataclass
class Evaluation:
    """Returns of ``len(returns)`` episodes at one target return (None: not return-conditioned),
    and whether each succeeded where the environment says (``info["success"]`` at any step)."""

    target_return: float | None
    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray | None = None

    def scores(self, spec: DatasetSpec) -> np.ndarray:
        """Each episode's score: its normalized return, or 100 per success where the dataset is
        scored by success rate (``score_by = "success"``: OGBench)."""
        if spec.params.get("score_by") == "success":
            if self.successes is None:
                raise OffbenchError(f"{spec.name} is scored by success rate, but {spec.env} reports no "
                                    "'success' in its step info")
            return 100.0 * self.successes
        return np.array([spec.normalize(r) for r in self.returns])

    def as_record(self, spec: DatasetSpec) -> dict:
        s = self.scores(spec)
        record = {"target_return": self.target_return, "episodes": int(len(self.returns)),
                  "return_mean": float(self.returns.mean()), "return_std": float(self.returns.std()),
                  "score_mean": float(s.mean()), "score_std": float(s.std()),
                  "length_mean": float(self.lengths.mean())}
        if self.successes is not None:
            record["success_rate"] = float(100.0 * self.successes.mean())
        return record


def rollout(policy: Policy, spec: DatasetSpec, episodes: int, seeds: Sequence[int], target_return: float | None = None,
            parallel: bool = False) -> list[Evaluation]:
    """Run ``episodes`` episodes of ``spec``'s environment for each of ``len(seeds)`` trained seeds,
    all at once; one :class:`Evaluation` per seed.

    The episodes are the sub-environments of one gymnasium vector env (``parallel``: each in its
    own process, ``AsyncVectorEnv``), stepped together with one batched policy call per step: the
    policy sees observations shaped (seeds, episodes, ...) and answers actions shaped (seeds,
    episodes, ...). Episode ``e`` of seed ``i`` is reset with ``seeds[i] + e``, so a seed's episodes
    do not depend on which other seeds are evaluated with it. A finished episode stays in the batch
    until all are done (gymnasium resets it; its further results are ignored).
    """
    s, n = len(seeds), len(seeds) * episodes
    fns = [lambda: make_env(spec) for _ in range(n)]
    vec = gym.vector.AsyncVectorEnv(fns) if parallel else gym.vector.SyncVectorEnv(fns)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    succeeded, reports_success = np.zeros(n, dtype=bool), False
    try:
        obs, _ = vec.reset(seed=[int(seed) + e for seed in seeds for e in range(episodes)])
        policy.reset(episodes)
        while not done.all():
            actions = policy.act(obs.reshape(s, episodes, *obs.shape[1:]))
            obs, rewards, terminated, truncated, info = vec.step(actions.reshape(n, *actions.shape[2:]))
            if "success" in info:
                reports_success = True
                succeeded |= ~done & info["_success"] & info["success"].astype(bool)
            rewards = np.where(done, 0.0, rewards)
            lengths += ~done
            returns += rewards
            policy.observe(rewards.reshape(s, episodes))
            done |= terminated | truncated
    finally:
        vec.close()
    per_seed = succeeded.reshape(s, episodes) if reports_success else [None] * s
    return [Evaluation(target_return, r, ln, ok)
            for r, ln, ok in zip(returns.reshape(s, episodes), lengths.reshape(s, episodes), per_seed)]
