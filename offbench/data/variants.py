"""Derived datasets: delayed (sparse) rewards, and filtering episodes by return (the data side of %BC)."""

from __future__ import annotations

import numpy as np

from offbench.data.dataset import Dataset


def top_fraction(data: Dataset, fraction: float, by: str = "timesteps") -> Dataset:
    """The best episodes by return.

    ``by="timesteps"`` (DT paper's %BC): whole episodes, best first, until they hold at least
    ``fraction`` of all timesteps. ``by="trajectories"`` (CORL's "10% BC"): the best
    ``ceil(fraction * episodes)`` episodes. Ties are broken by episode order (stable sort).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    order = np.argsort(-data.episode_returns, kind="stable")
    if by == "timesteps":
        covered = np.cumsum(data.episode_lengths[order])
        n = int(np.searchsorted(covered, fraction * len(data) - 1e-9) + 1)
    elif by == "trajectories":
        n = int(np.ceil(fraction * data.num_episodes))
    else:
        raise ValueError(f"by must be 'timesteps' or 'trajectories', got {by!r}")
    keep = np.zeros(data.num_episodes, dtype=bool)
    keep[order[: min(n, data.num_episodes)]] = True
    return data.select_episodes(keep)


def successful(data: Dataset) -> Dataset:
    """Episodes that reach the dataset's best return (for binary-reward tasks: the successes)."""
    returns = data.episode_returns
    return data.select_episodes(returns >= returns.max() - 1e-9)


def delayed_rewards(data: Dataset, name: str = "") -> Dataset:
    """Each episode's whole return on its last step and zeros elsewhere (DT paper, sec. 5.4)."""
    rewards = np.zeros(len(data), dtype=np.float64)
    rewards[data.episode_ends - 1] = data.episode_returns
    return data.with_rewards(rewards, name or f"{data.name}-sparse")
