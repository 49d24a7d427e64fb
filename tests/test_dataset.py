"""The in-memory Dataset: episodes, returns-to-go, statistics, samplers, %BC filtering."""

from __future__ import annotations

import numpy as np
import pytest

from offbench.data.dataset import Dataset, TransitionSampler, WindowSampler
from offbench.data.variants import successful, top_fraction


def toy() -> Dataset:
    """Three episodes of lengths 3, 2, 4 with known rewards; observation = global step index."""
    rewards = np.array([1, 2, 3, 10, 0, 0.5, 0.5, 0.5, 0.5], dtype=np.float32)
    obs = np.arange(9, dtype=np.float32)[:, None].repeat(2, axis=1)
    terminals = np.array([0, 0, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    timeouts = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    return Dataset(obs, np.arange(9) % 4, rewards, terminals, timeouts, np.array([0, 3, 5]), "toy")


def test_episodes_returns_and_returns_to_go() -> None:
    d = toy()
    assert d.num_episodes == 3 and len(d) == 9
    assert d.episode_lengths.tolist() == [3, 2, 4]
    assert d.episode_returns.tolist() == [6, 10, 2]
    assert d.returns_to_go.tolist() == [6, 5, 3, 10, 0, 2, 1.5, 1, 0.5]
    assert d.timesteps.tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 3]
    assert np.allclose(d.obs_mean, 4.0) and np.allclose(d.obs_std, np.arange(9).std(), atol=1e-5)


def test_window_sampler_left_pads_with_masks() -> None:
    d = toy()
    s = WindowSampler(d, context=3, batch_size=500, rng=np.random.default_rng(0))
    assert not s.whole_episodes  # an episode (length 4) is longer than the context
    b = s.sample()
    assert b["observations"].shape == (500, 3, 2) and b["actions"].shape == (500, 3)
    assert b["returns_to_go"].shape == b["timesteps"].shape == b["mask"].shape == (500, 3)
    for i in range(500):
        m = b["mask"][i].astype(bool)
        n = m.sum()
        assert n >= 1 and m.tolist() == [False] * (3 - n) + [True] * n  # padding only on the left
        assert (b["observations"][i][~m] == 0).all() and (b["returns_to_go"][i][~m] == 0).all()
        idx = b["observations"][i][m][:, 0].astype(int)  # global step indices of the real steps
        assert (np.diff(idx) == 1).all() and len(set(d.episode_index[idx])) == 1  # one episode, in order
        assert np.allclose(b["returns_to_go"][i][m], d.returns_to_go[idx])
        assert b["timesteps"][i][m].tolist() == d.timesteps[idx].tolist()
    # episodes are drawn in proportion to their length: episode 3 (4 of 9 steps) most often
    first = b["observations"][:, -1, 0].astype(int)
    share = np.bincount(d.episode_index[first], minlength=3) / 500
    assert share[2] > share[0] > share[1]


def test_window_sampler_takes_whole_episodes_when_they_fit() -> None:
    d = toy()
    b = WindowSampler(d, context=4, batch_size=200, rng=np.random.default_rng(1)).sample()
    for i in range(200):
        m = b["mask"][i].astype(bool)
        assert b["timesteps"][i][m][0] == 0  # every window starts at its episode's first step
        idx = b["observations"][i][m][:, 0].astype(int)
        assert len(idx) == d.episode_lengths[d.episode_index[idx[0]]]


def test_transition_sampler_next_observations_stay_in_episode() -> None:
    d = toy()
    b = TransitionSampler(d, 400, np.random.default_rng(0)).sample()
    idx = b["observations"][:, 0].astype(int)
    nxt = b["next_observations"][:, 0].astype(int)
    last = np.isin(idx, d.episode_ends - 1)
    assert (nxt[~last] == idx[~last] + 1).all() and (nxt[last] == idx[last]).all()
    assert np.array_equal(b["dones"], d.terminals[idx].astype(np.float32))


def test_top_fraction_by_timesteps_and_trajectories() -> None:
    d = toy()
    assert top_fraction(d, 0.2, "timesteps").episode_returns.tolist() == [10]  # 2 of 9 steps
    # whole trajectories, best first, while their steps fit in the fraction's budget (kzl's loop)
    assert top_fraction(d, 0.3, "timesteps").episode_returns.tolist() == [10]  # budget int(2.7) = 2 steps
    assert top_fraction(d, 0.6, "timesteps").episode_returns.tolist() == [6, 10]  # budget 5 = 2 + 3
    # CORL: the best max(1, int(fraction * episodes)) trajectories
    assert top_fraction(d, 0.5, "trajectories").episode_returns.tolist() == [10]  # max(1, int(1.5))
    assert top_fraction(d, 0.7, "trajectories").episode_returns.tolist() == [6, 10]
    assert top_fraction(d, 1.0).num_episodes == 3
    kept = top_fraction(d, 0.6)
    assert kept.returns_to_go.tolist() == [6, 5, 3, 10, 0] and kept.episode_starts.tolist() == [0, 3]
    assert successful(d).episode_returns.tolist() == [10]
    with pytest.raises(ValueError):
        top_fraction(d, 0.0)
