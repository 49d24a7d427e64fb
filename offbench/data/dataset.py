"""The in-memory dataset: episodes, returns, returns-to-go, normalization statistics, samplers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np


def flat_observations(obs: Mapping[str, Any], lead: int = 1) -> np.ndarray:
    """A dict observation as one vector (``lead``: leading batch or time dimensions kept): its keys
    in alphabetical order (gymnasium's order for a ``Dict`` space made from a dict; goal-reaching
    sets: ``achieved_goal``, ``desired_goal``, ``observation``), a nested dict's the same way in
    its place, each array flattened row-major. The data and the evaluation environment
    (:func:`offbench.envs.factory.make_gym_env`) use this one order."""
    parts = []
    for key in sorted(obs):
        value = obs[key]
        if isinstance(value, Mapping):
            parts.append(flat_observations(value, lead))
        else:
            a = np.asarray(value)
            parts.append(a.reshape(*a.shape[:lead], -1))
    return np.concatenate(parts, axis=-1)


@dataclass
class Dataset:
    """Flat per-step arrays plus the index of each episode's first step."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    episode_starts: np.ndarray
    name: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    next_observations: np.ndarray | None = None  # as stored upstream (D4RL, Minari), when present
    stack_indices: np.ndarray | None = None  # Atari: (N, stack) rows of each state's frames, -1 = zero frame

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], name: str = "", attrs: dict[str, Any] | None = None) -> Dataset:
        keys = ("observations", "actions", "rewards", "terminals", "timeouts", "episode_starts")
        return cls(**{k: arrays[k] for k in keys}, name=name, attrs=dict(attrs or {}),
                   next_observations=arrays.get("next_observations"), stack_indices=arrays.get("stack_indices"))

    # -- shape facts ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_starts)

    @property
    def discrete_actions(self) -> bool:
        return np.issubdtype(self.actions.dtype, np.integer)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """The shape of one state: a frame stack (stack, H, W) for Atari, else one observation."""
        if self.stack_indices is not None:
            return (self.stack_indices.shape[1], *self.observations.shape[1:])
        return tuple(self.observations.shape[1:])

    def states(self, idx: np.ndarray) -> np.ndarray:
        """The states at steps ``idx`` (any shape): observations, or frame stacks assembled from
        single frames through ``stack_indices`` (zero frames before an episode's start)."""
        if self.stack_indices is None:
            return self.observations[idx]
        rows = self.stack_indices[idx]
        frames = self.observations[np.maximum(rows, 0)]
        frames[rows < 0] = 0
        return frames

    @property
    def action_dim(self) -> int:
        """Number of discrete actions, or the size of a continuous action vector."""
        if self.discrete_actions:
            return int(self.attrs.get("num_actions", int(self.actions.max()) + 1))
        return int(np.prod(self.actions.shape[1:]))

    # -- episodes ------------------------------------------------------------------------------
    @cached_property
    def episode_ends(self) -> np.ndarray:
        """One past each episode's last step."""
        return np.append(self.episode_starts[1:], len(self)).astype(np.int64)

    @cached_property
    def episode_lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts

    @cached_property
    def episode_index(self) -> np.ndarray:
        """For every step, the index of its episode."""
        return np.repeat(np.arange(self.num_episodes), self.episode_lengths)

    @cached_property
    def timesteps(self) -> np.ndarray:
        """For every step, its position within its episode (0-based)."""
        return np.arange(len(self)) - self.episode_starts[self.episode_index]

    @cached_property
    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode (float64)."""
        return np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts) if len(self) else np.zeros(0)

    @property
    def return_range(self) -> tuple[float, float] | None:
        """The lowest and highest episode return (None for a dataset without episodes)."""
        returns = self.episode_returns
        return (float(returns.min()), float(returns.max())) if len(returns) else None

    @cached_property
    def returns_to_go(self) -> np.ndarray:
        """For every step t, the undiscounted sum of rewards from t to the end of its episode."""
        csum = np.cumsum(self.rewards.astype(np.float64))
        end_total = csum[self.episode_ends - 1][self.episode_index]
        before = np.concatenate([[0.0], csum[:-1]])
        return end_total - before

    def discounted_returns_to_go(self, gamma: float) -> np.ndarray:
        """For every step t, sum_k gamma^k r_{t+k} to the end of its episode (float64)."""
        from scipy.signal import lfilter

        out = np.empty(len(self), dtype=np.float64)
        r = self.rewards.astype(np.float64)
        for s, e in zip(self.episode_starts, self.episode_ends):
            out[s:e] = lfilter([1.0], [1.0, -gamma], r[s:e][::-1])[::-1]
        return out

    @cached_property
    def obs_mean(self) -> np.ndarray:
        return self.observations.reshape(len(self), -1).mean(axis=0, dtype=np.float64).astype(np.float32)

    @cached_property
    def obs_std(self) -> np.ndarray:
        """Per-feature standard deviation over all steps (no epsilon: each algorithm adds its own)."""
        std = self.observations.reshape(len(self), -1).std(axis=0, dtype=np.float64)
        return std.astype(np.float32)

    def select_episodes(self, keep: np.ndarray) -> Dataset:
        """A new dataset holding only the episodes where ``keep`` (bool, per episode) is true."""
        keep = np.asarray(keep, dtype=bool)
        if not keep.any():
            raise ValueError(f"{self.name}: the selection keeps no episode")
        steps = keep[self.episode_index]
        lengths = self.episode_lengths[keep]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        stacks = None
        if self.stack_indices is not None:  # renumber frame rows; -1 (zero frame) stays -1
            new_row = np.full(len(self) + 1, -1, dtype=np.int64)
            new_row[np.flatnonzero(steps)] = np.arange(int(steps.sum()))
            stacks = new_row[self.stack_indices[steps]].astype(np.int32)
        nxt = None if self.next_observations is None else self.next_observations[steps]
        return Dataset(self.observations[steps], self.actions[steps], self.rewards[steps],
                       self.terminals[steps], self.timeouts[steps], starts, self.name, dict(self.attrs),
                       next_observations=nxt, stack_indices=stacks)

    def with_rewards(self, rewards: np.ndarray, name: str) -> Dataset:
        """The same steps with other rewards (for reward variants)."""
        return dataclasses.replace(self, rewards=np.asarray(rewards, dtype=np.float32), name=name,
                                   attrs=dict(self.attrs))

    def summary(self) -> dict[str, Any]:
        """Counts and return statistics (for ``offbench info``)."""
        r = self.episode_returns
        return {
            "episodes": int(self.num_episodes),
            "transitions": int(len(self)),
            "return_min": float(r.min()) if len(r) else None,
            "return_mean": float(r.mean()) if len(r) else None,
            "return_max": float(r.max()) if len(r) else None,
        }


class TransitionSampler:
    """Uniform minibatches of single steps: observations, actions, rewards, next observations, dones.

    Next observations come from the dataset's ``next_observations`` when it has them (D4RL,
    Minari); otherwise the next step's observation, and for an episode's last step the step itself
    (its ``done`` is the terminal flag; a timeout is not a terminal).
    """

    def __init__(self, data: Dataset, batch_size: int, rng: np.random.Generator,
                 extras: dict[str, np.ndarray] | None = None) -> None:
        self.data, self.batch_size, self.rng = data, batch_size, rng
        d = data
        # every per-step column of a batch but the states, once: more arrays from ``extras`` (e.g. sample weights)
        self.per_step = {"actions": d.actions, "rewards": d.rewards.astype(np.float32, copy=False),
                         "dones": d.terminals.astype(np.float32),
                         "returns_to_go": d.returns_to_go.astype(np.float32, copy=False), **(extras or {})}
        last = np.zeros(len(data), dtype=bool)
        last[data.episode_ends - 1] = True
        self._next = np.where(last, np.arange(len(data)), np.arange(len(data)) + 1)

    def indices(self) -> np.ndarray:
        """The steps of the next batch (uniform, with replacement)."""
        return self.rng.integers(0, len(self.data), size=self.batch_size)

    def sample(self) -> dict[str, np.ndarray]:
        d, idx = self.data, self.indices()
        nxt = d.next_observations[idx] if d.next_observations is not None else d.states(self._next[idx])
        return {"observations": d.states(idx), "next_observations": nxt,
                **{k: v[idx] for k, v in self.per_step.items()}}

    def columns(self) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
        """What :meth:`sample` gathers, as whole per-step columns, and the index of each step's
        next observation in ``observations`` (None with stored next observations): a batch is
        ``column[indices()]``. None for frame stacks, which are assembled per batch."""
        d = self.data
        if d.stack_indices is not None:
            return None
        cols = {"observations": d.observations, **self.per_step}
        if d.next_observations is not None:
            return {**cols, "next_observations": d.next_observations}, None
        return cols, self._next


class WindowSampler:
    """Minibatches of length-K windows for sequence models (Decision Transformer recipe).

    Episodes are drawn in proportion to their length, a start step uniformly within the episode,
    and the window holds up to K steps from there. When no episode is longer than K (Key-to-Door:
    the whole episode is the context), every window starts at its episode's first step instead, as
    at evaluation. Shorter windows are left-padded: padding has ``mask`` 0, zero
    observations/actions/returns-to-go and timestep 0.
    """

    def __init__(self, data: Dataset, context: int, batch_size: int, rng: np.random.Generator) -> None:
        self.data, self.context, self.batch_size, self.rng = data, context, batch_size, rng
        self._p = data.episode_lengths / data.episode_lengths.sum()
        self.whole_episodes = bool(data.episode_lengths.max() <= context)

    def start_offsets(self, length: np.ndarray) -> np.ndarray:
        """Each window's first step within its episode (of the given lengths)."""
        if self.whole_episodes:
            return np.zeros(len(length), dtype=np.int64)
        return (self.rng.random(len(length)) * length).astype(np.int64)  # uniform within the episode

    def sample(self) -> dict[str, np.ndarray]:
        d, k, b = self.data, self.context, self.batch_size
        ep = self.rng.choice(d.num_episodes, size=b, p=self._p)
        length = d.episode_lengths[ep]
        offset = self.start_offsets(length)
        valid = np.minimum(k, length - offset)  # steps in the window
        pos = np.arange(k)[None, :] - (k - valid)[:, None]  # step index within the window, <0 = pad
        mask = pos >= 0
        idx = np.where(mask, d.episode_starts[ep][:, None] + offset[:, None] + pos, 0)
        states = d.states(idx)
        m = mask.reshape(b, k, *([1] * (states.ndim - 2)))
        act_mask = mask.reshape(b, k, *([1] * (d.actions.ndim - 1)))
        return {
            "observations": np.where(m, states, 0).astype(d.observations.dtype),
            "actions": np.where(act_mask, d.actions[idx], 0).astype(d.actions.dtype),
            "rewards": np.where(mask, d.rewards[idx], 0).astype(np.float32),
            "returns_to_go": np.where(mask, d.returns_to_go[idx], 0).astype(np.float32),
            "timesteps": np.where(mask, d.timesteps[idx], 0).astype(np.int64),
            "mask": mask.astype(np.float32),
        }
