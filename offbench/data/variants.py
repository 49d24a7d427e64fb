"""Derived datasets: delayed (sparse) rewards, and filtering episodes by return (the data side of %BC)."""

from __future__ import annotations

import numpy as np

from offbench.data.dataset import Dataset


def top_fraction(data: Dataset, fraction: float, by: str = "timesteps") -> Dataset:
    """The best whole episodes by undiscounted return, as the two publications select them.

    ``by="timesteps"`` (the Decision Transformer paper's %BC, kzl/decision-transformer
    ``gym/experiment.py`` l.101-113): a budget of ``max(int(fraction * steps), 1)`` timesteps; the
    best episode is always kept, then episodes in return order while the running count stays
    within the budget, stopping at the first one that would exceed it (no skipping ahead).
    ``by="trajectories"`` (CORL's "10% BC", ``any_percent_bc.py`` ``keep_best_trajectories``
    l.228-229, ``discount: 1.0`` in ``configs/offline/bc_10``): the best
    ``max(1, int(fraction * episodes))`` episodes. Both sort with the reference's own expression
    (``np.argsort(returns)``, kzl ascending from the end; CORL ``[::-1]``), so ties fall as there.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    returns, lengths = data.episode_returns, data.episode_lengths
    if by == "timesteps":
        budget = max(int(fraction * int(lengths.sum())), 1)
        order = np.argsort(returns)  # lowest to highest
        n, covered, ind = 1, int(lengths[order[-1]]), len(order) - 2
        while ind >= 0 and covered + int(lengths[order[ind]]) <= budget:
            covered += int(lengths[order[ind]])
            n += 1
            ind -= 1
        chosen = order[-n:]
    elif by == "trajectories":
        chosen = np.argsort(returns, axis=0)[::-1][: max(1, int(fraction * len(returns)))]
    else:
        raise ValueError(f"by must be 'timesteps' or 'trajectories', got {by!r}")
    keep = np.zeros(data.num_episodes, dtype=bool)
    keep[chosen] = True
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
