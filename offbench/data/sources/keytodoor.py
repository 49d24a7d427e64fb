"""Key-to-Door datasets: trajectories of a uniform-random policy, generated deterministically.

Episode ``i`` is reset with seed ``seed + i`` and its actions come from one
``numpy.random.default_rng(seed)`` stream, so the arrays (and their ``content_sha256``) are the
same on every machine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from offbench.data.sources.base import SOURCES, FetchContext
from offbench.data.spec import DatasetSpec
from offbench.envs.keytodoor import KeyToDoorEnv
from offbench.envs.rollout import random_episode


def random_trajectories(env: KeyToDoorEnv, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Roll out ``episodes`` uniform-random episodes; return canonical arrays."""
    rng = np.random.default_rng(seed)
    obs_list, act_list, rew_list, term_list, trunc_list, starts = [], [], [], [], [], []
    for i in range(episodes):
        starts.append(len(act_list))
        for obs, action, reward, terminated, truncated in random_episode(env, rng, seed + i):
            obs_list.append(obs)
            act_list.append(action)
            rew_list.append(reward)
            term_list.append(terminated)
            trunc_list.append(truncated)
    return {
        "observations": np.asarray(obs_list, dtype=np.uint8),
        "actions": np.asarray(act_list, dtype=np.int64),
        "rewards": np.asarray(rew_list, dtype=np.float32),
        "terminals": np.asarray(term_list, dtype=bool),
        "timeouts": np.asarray(trunc_list, dtype=bool),
        "episode_starts": np.asarray(starts, dtype=np.int64),
    }


@SOURCES.register("keytodoor")
def build(spec: DatasetSpec, ctx: FetchContext | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Generate ``spec.params['episodes']`` random trajectories with seed ``spec.params['seed']``."""
    episodes, seed = int(spec.params["episodes"]), int(spec.params["seed"])
    env = KeyToDoorEnv(**spec.env_kwargs)
    arrays = random_trajectories(env, episodes, seed)
    attrs = {"generator": "uniform-random policy", "episodes": episodes, "seed": seed,
             "env": spec.env, "env_kwargs": spec.env_kwargs, "num_actions": int(env.action_space.n)}
    return arrays, attrs


build.imports_local = False  # type: ignore[attr-defined]  # offbench makes these; --from-file has nothing to import
