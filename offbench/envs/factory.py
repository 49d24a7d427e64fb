"""Build the evaluation environment of a dataset from its ``datasets.toml`` entry."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from offbench.data.spec import DatasetSpec
from offbench.envs import keytodoor
from offbench.errors import OffbenchError

EXTRAS = {"mujoco": "mujoco", "atari": "atari"}


def make_env(spec: DatasetSpec) -> gym.Env:
    """A fresh evaluation environment for ``spec`` (time limit = the spec's episode cap)."""
    keytodoor.register()
    try:
        env = gym.make(spec.env, max_episode_steps=spec.max_episode_steps, **spec.env_kwargs)
    except (gym.error.Error, ImportError, ModuleNotFoundError) as e:
        hint = f"; install the '{EXTRAS[spec.domain]}' extra (pip install 'offbench[{EXTRAS[spec.domain]}]')" \
            if spec.domain in EXTRAS else ""
        raise OffbenchError(f"cannot make environment {spec.env} for {spec.name}: {e}{hint}") from None
    return DelayedReward(env) if spec.reward == "delayed" else env


class DelayedReward(gym.Wrapper):
    """Rewards withheld until the episode ends, then paid as their sum (the -sparse datasets).

    The episode's return is unchanged; a return-conditioned policy sees zeros until the last step.
    """

    def reset(self, **kwargs: Any) -> Any:
        self._owed = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._owed += float(reward)
        if terminated or truncated:
            reward, self._owed = self._owed, 0.0
        else:
            reward = 0.0
        return obs, reward, terminated, truncated, info
