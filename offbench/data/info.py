"""What an algorithm needs to know about its data to build itself: shapes, the kind of actions,
normalization statistics and a few episode facts. Samplers see the whole :class:`Dataset`; the
networks, normalizers and schedules see only this, so an agent trained online (SAC in
``offbench generate``) describes its environment's spaces without a dataset."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from offbench.data.dataset import Dataset
from offbench.data.spec import DatasetSpec


@dataclass(frozen=True)
class DataInfo:
    """A small description of one dataset (or of an environment's spaces)."""

    name: str
    domain: str
    obs_shape: tuple[int, ...]
    action_dim: int  # the number of discrete actions, or the size of a continuous action vector
    discrete: bool
    obs_mean: np.ndarray | None = None  # per observation feature, flattened; None where not computed
    obs_std: np.ndarray | None = None
    return_range: tuple[float, float] | None = None  # the lowest and highest episode return
    longest_episode: int = 0
    max_episode_steps: int = 0  # the environment's time limit (0: none known)
    transitions: int = 0
    target_returns: tuple[float, ...] = ()

    @classmethod
    def of(cls, data: Dataset, spec: DatasetSpec, obs_stats: bool = True) -> DataInfo:
        """``data``'s description (observation statistics only with ``obs_stats``: computing them
        reads every observation, which frames make costly and do not need)."""
        info = cls(name=spec.name, domain=spec.domain, obs_shape=tuple(data.obs_shape), action_dim=data.action_dim,
                   discrete=bool(data.discrete_actions), return_range=data.return_range,
                   longest_episode=int(data.episode_lengths.max()) if data.num_episodes else 0,
                   max_episode_steps=spec.max_episode_steps, transitions=len(data),
                   target_returns=tuple(spec.target_returns))
        return info.with_obs_stats(data) if obs_stats else info

    def with_obs_stats(self, data: Dataset) -> DataInfo:
        """The same description with the observation statistics of ``data`` (e.g. a selection of it)."""
        return dataclasses.replace(self, obs_mean=data.obs_mean, obs_std=data.obs_std)
