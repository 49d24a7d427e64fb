"""Build the evaluation environment of a dataset from its ``datasets.toml`` entry."""

from __future__ import annotations

import gymnasium as gym

from offbench.data.spec import DatasetSpec
from offbench.envs import keytodoor
from offbench.errors import OffbenchError


def make_env(spec: DatasetSpec) -> gym.Env:
    """A fresh evaluation environment for ``spec`` (time limit = the spec's episode cap)."""
    keytodoor.register()
    try:
        return gym.make(spec.env, max_episode_steps=spec.max_episode_steps, **spec.env_kwargs)
    except gym.error.Error as e:
        raise OffbenchError(f"cannot make environment {spec.env} for {spec.name}: {e}") from None
