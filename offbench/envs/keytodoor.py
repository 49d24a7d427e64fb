"""Key-to-Door: the credit-assignment grid world of the Decision Transformer paper.

An episode has three phases, each in its own square room of ``room_size`` x ``room_size`` cells:

1. **Key room** (``phase_lengths[0]`` steps). The agent starts on a random cell; a key lies on
   another random cell. Stepping onto it picks it up (it disappears from the observation).
2. **Distractor room** (``phase_lengths[1]`` steps). An empty room; nothing to do.
3. **Door room** (up to ``phase_lengths[2]`` steps). A door lies on a random cell. Stepping onto it
   ends the episode with reward 1 if the key was picked up in phase 1, else reward 0.

Phases 1 and 2 always last their full length; the agent is placed on a new random cell at the
start of every phase. The episode is truncated if the door is not reached by the end of phase 3.

Actions (``Discrete(4)``): 0 up, 1 right, 2 down, 3 left; moving into a wall leaves the agent in
place.

Observation (``Box(0, 1, ((2 * room_size - 1)**2 + 4 + 3,), uint8)``; 88 for 5x5): an egocentric
view, as in MiniGrid, the concatenation of
- the object's offset from the agent, one-hot over the ``(2 * room_size - 1)**2`` possible
  (row, column) offsets (row-major, offset (0, 0) in the middle): the key in phase 1 until picked
  up, the door in phase 3, all zeros otherwise;
- four wall bits: whether a wall is directly up, right, down, left of the agent;
- the phase, one-hot over 3.
The direction to the object is read off directly, and what is learned at one cell carries over to
the others (an absolute-position one-hot made policies fit per-cell noise from the few successful
episodes).
Whether the key is held is *not* observed in phases 2 and 3: a policy must remember it, which is
what makes this a credit-assignment task (the reward arrives 9 to 23 steps after the key).

Defaults (room 5x5, phases 8/8/8 steps, 24 steps at most) are calibrated so that a uniform-random
policy succeeds about as often as in the paper (3.1%); ``RANDOM_SUCCESS_RATE`` records the
measurement.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "offbench/KeyToDoor-v0"

#: Moves for actions 0..3 as (row, column) deltas: up, right, down, left.
MOVES = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)], dtype=np.int64)

#: Success rate of a uniform-random policy with the default parameters, measured over
#: 200,000 episodes (``benchmarks/keytodoor_random.py``).
RANDOM_SUCCESS_RATE = 0.0309


class KeyToDoorEnv(gym.Env[np.ndarray, np.int64]):
    """Three-phase key-to-door grid world (see module docstring)."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        room_size: int = 5,
        phase_lengths: tuple[int, int, int] | list[int] = (8, 8, 8),
        render_mode: str | None = None,
    ) -> None:
        if room_size < 2:
            raise ValueError(f"room_size must be >= 2, got {room_size}")
        if len(phase_lengths) != 3 or min(phase_lengths) < 1:
            raise ValueError(f"phase_lengths must be three positive ints, got {phase_lengths}")
        self.room_size = int(room_size)
        self.phase_lengths = tuple(int(n) for n in phase_lengths)
        self.max_episode_steps = sum(self.phase_lengths)
        self.render_mode = render_mode
        self.offsets = (2 * self.room_size - 1) ** 2
        self.observation_space = spaces.Box(0, 1, shape=(self.offsets + 4 + 3,), dtype=np.uint8)
        self.action_space = spaces.Discrete(4)
        self._phase_ends = np.cumsum(self.phase_lengths)
        self._t = 0
        self._phase = 0
        self._agent = np.zeros(2, dtype=np.int64)
        self._object: np.ndarray | None = None
        self.has_key = False

    # -- helpers -------------------------------------------------------------------------------
    def _random_cell(self, exclude: np.ndarray | None = None) -> np.ndarray:
        while True:
            cell = self.np_random.integers(0, self.room_size, size=2)
            if exclude is None or not np.array_equal(cell, exclude):
                return cell

    def _enter_phase(self, phase: int) -> None:
        self._phase = phase
        self._agent = self._random_cell()
        self._object = self._random_cell(exclude=self._agent) if phase in (0, 2) else None

    def _observation(self) -> np.ndarray:
        width, last = 2 * self.room_size - 1, self.room_size - 1
        obs = np.zeros(self.observation_space.shape, dtype=np.uint8)
        if self._object is not None:
            dr, dc = self._object - self._agent + last
            obs[dr * width + dc] = 1
        row, col = self._agent
        obs[self.offsets : self.offsets + 4] = (row == 0, col == last, row == last, col == 0)
        obs[self.offsets + 4 + self._phase] = 1
        return obs

    def _info(self) -> dict[str, Any]:
        return {"phase": self._phase, "has_key": self.has_key, "t": self._t}

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        self.has_key = False
        self._enter_phase(0)
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not 0 <= action < 4:
            raise ValueError(f"action must be in 0..3, got {action}")
        self._agent = np.clip(self._agent + MOVES[action], 0, self.room_size - 1)
        self._t += 1
        reward, terminated = 0.0, False
        on_object = self._object is not None and np.array_equal(self._agent, self._object)
        if self._phase == 0 and on_object:
            self.has_key = True
            self._object = None
        elif self._phase == 2 and on_object:
            reward, terminated = (1.0 if self.has_key else 0.0), True
        truncated = not terminated and self._t >= self.max_episode_steps
        if not (terminated or truncated) and self._phase < 2 and self._t >= self._phase_ends[self._phase]:
            self._enter_phase(self._phase + 1)
        return self._observation(), reward, terminated, truncated, self._info()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        grid = [["." for _ in range(self.room_size)] for _ in range(self.room_size)]
        if self._object is not None:
            grid[self._object[0]][self._object[1]] = "K" if self._phase == 0 else "D"
        grid[self._agent[0]][self._agent[1]] = "A"
        header = f"phase {self._phase + 1} t={self._t} key={'yes' if self.has_key else 'no'}"
        return "\n".join([header] + ["".join(row) for row in grid])


def register() -> None:
    """Register ``offbench/KeyToDoor-v0`` with gymnasium (idempotent)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="offbench.envs.keytodoor:KeyToDoorEnv")
