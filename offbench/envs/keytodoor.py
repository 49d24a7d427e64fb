"""Key-to-Door: the credit-assignment grid world of the Decision Transformer paper.

A reconstruction of DeepMind's TVT ``key_to_door`` (Hung et al. 2019, pycolab version:
``tvt/pycolab/key_to_door.py`` and ``common.py`` in google-deepmind/deepmind-research), the task
the DT paper (sec. 5.3) takes from Mesnard et al. 2020. The DT paper publishes no parameters; every
one below is TVT's unless marked as offbench's choice.

An episode has three phases, each on its own 7 x 11 board (TVT's art; ``#`` wall, ``.`` floor)::

    key room (15 steps)   distractor (10 steps)   door room (15 steps)
      #######             ###########                ##D##
      #kkkkk#             #.........#                #...#
      #kkkkk#             #.........#                #.A.#
      ##...##             #.........#                #...#
      #AAAAA#             #.........#                #####
      #AAAAA#             #....A....#
      #######             ###########

1. **Key room.** The key lies on one of the 10 ``k`` cells and the agent starts on one of the 10
   ``A`` cells, each drawn uniformly and independently. Stepping onto the key picks it up (it
   disappears; on that step only, a pickup indicator replaces the wall cell above the room's
   middle column, as in TVT).
2. **Distractor room.** An empty room; the agent starts at its fixed cell. TVT's version holds
   apples worth small rewards; offbench's is empty (the DT paper: "an empty room"). Its length is
   offbench's choice: TVT's pycolab default is 90 steps; 10 keeps the whole episode (40 steps) a
   DT context that trains on a CPU while the key still lies 25 or more steps before the door.
3. **Door room.** The agent starts in the middle of a 3 x 3 room whose top wall holds the door.
   Without the key the door blocks like a wall; with it, stepping onto the door gives reward 1
   (TVT: 10; the DT paper: binary), once. The phase lasts its full 15 steps, as in TVT.

Every phase runs for its full length (only the clock ends a phase or the episode: TVT); the last
action of a phase is applied and the observation it returns is the next phase's first.

Actions (``Discrete(4)``, TVT's order): 0 north, 1 south, 2 west, 3 east; walls and the board edge
block without penalty.

Observation (``Box(0, 1, (100,), uint8)``): TVT's 5 x 5 egocentric crop (the agent in the middle
cell), one 0/1 channel per thing instead of TVT's RGB colours: ``[row][col][wall, key, door,
indicator]``, row-major. Floor, the agent itself and cells off the board are all zeros (TVT draws
off-board cells in the floor's colour). The door is drawn over the agent (TVT's z-order). Whether
the key is held is never observed: a policy must remember it, which is what makes this a
credit-assignment task.

``RANDOM_SUCCESS_RATE`` records the uniform-random policy's measured success rate (paper: 3.1%).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "offbench/KeyToDoor-v0"

#: Moves for actions 0..3 as (row, column) deltas: north, south, west, east (TVT's order).
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)], dtype=np.int64)

#: TVT's boards (``tvt/pycolab/key_to_door.py`` EXPLORE_GRID, REWARD_GRID; ``common.py``
#: APPLE_DISTRACTOR_GRID with no apples): ``#`` wall, ``k`` candidate key cell, ``+`` candidate
#: start cell, ``d`` door, blanks floor (or unreachable background).
KEY_ROOM = ("  #######  ",
            "  #kkkkk#  ",
            "  #kkkkk#  ",
            "  ##   ##  ",
            "  #+++++#  ",
            "  #+++++#  ",
            "  #######  ")
DISTRACTOR_ROOM = ("###########",
                   "#         #",
                   "#         #",
                   "#         #",
                   "#         #",
                   "#    +    #",
                   "###########")
DOOR_ROOM = ("           ",
             "   ##d##   ",
             "   #   #   ",
             "   # + #   ",
             "   #   #   ",
             "   #####   ",
             "           ")
ROOMS = (KEY_ROOM, DISTRACTOR_ROOM, DOOR_ROOM)
#: The cell where the pickup indicator shows on the step the key is picked up (TVT: (0, 5)).
INDICATOR_CELL = (0, 5)
VIEW = 5  # the egocentric crop is VIEW x VIEW
WALL, KEY, DOOR, INDICATOR = range(4)

#: Success rate of a uniform-random policy with the default parameters, measured over
#: 1,000,000 episodes (``benchmarks/keytodoor_random.py``).
RANDOM_SUCCESS_RATE = 0.0281


def _cells(room: tuple[str, ...], char: str) -> np.ndarray:
    return np.argwhere(np.array([list(row) for row in room]) == char)


class KeyToDoorEnv(gym.Env[np.ndarray, np.int64]):
    """Three-phase key-to-door grid world on TVT's layout (see module docstring)."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, phase_lengths: tuple[int, int, int] | list[int] = (15, 10, 15),
                 render_mode: str | None = None) -> None:
        if len(phase_lengths) != 3 or min(phase_lengths) < 1:
            raise ValueError(f"phase_lengths must be three positive ints, got {phase_lengths}")
        self.phase_lengths = tuple(int(n) for n in phase_lengths)
        self.max_episode_steps = sum(self.phase_lengths)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 1, shape=(VIEW * VIEW * 4,), dtype=np.uint8)
        self.action_space = spaces.Discrete(4)
        self._walls = [np.array([[c == "#" for c in row] for row in room]) for room in ROOMS]
        self._key_cells, self._start_cells = _cells(KEY_ROOM, "k"), _cells(KEY_ROOM, "+")
        self._fixed_starts = {1: _cells(DISTRACTOR_ROOM, "+")[0], 2: _cells(DOOR_ROOM, "+")[0]}
        self._door = _cells(DOOR_ROOM, "d")[0]
        # each phase's static channels on a board padded by VIEW // 2 floor cells (off the board)
        half = VIEW // 2
        self._boards = []
        for phase, walls in enumerate(self._walls):
            board = np.zeros((walls.shape[0] + 2 * half, walls.shape[1] + 2 * half, 4), dtype=np.uint8)
            board[half:-half, half:-half, WALL] = walls
            if phase == 2:
                board[self._door[0] + half, self._door[1] + half, DOOR] = 1
            self._boards.append(board)
        self._phase_ends = np.cumsum(self.phase_lengths)
        self._t = 0
        self._phase = 0
        self._agent = np.zeros(2, dtype=np.int64)
        self._key: np.ndarray | None = None
        self._indicator = False
        self.has_key = False
        self.opened = False

    def _enter_phase(self, phase: int) -> None:
        self._phase = phase
        self._indicator = False
        if phase == 0:
            self._key = self._key_cells[self.np_random.integers(len(self._key_cells))].copy()
            self._agent = self._start_cells[self.np_random.integers(len(self._start_cells))].copy()
        else:
            self._key = None
            self._agent = self._fixed_starts[phase].copy()

    def _blocked(self, cell: np.ndarray) -> bool:
        rows, cols = self._walls[self._phase].shape
        if not (0 <= cell[0] < rows and 0 <= cell[1] < cols):
            return True
        if self._phase == 2 and np.array_equal(cell, self._door):
            return not self.has_key
        return bool(self._walls[self._phase][cell[0], cell[1]])

    def _observation(self) -> np.ndarray:
        half = VIEW // 2
        board = self._boards[self._phase]
        if self._key is not None or self._indicator:
            board = board.copy()
            if self._key is not None:
                board[self._key[0] + half, self._key[1] + half, KEY] = 1
            if self._indicator:
                r, c = INDICATOR_CELL[0] + half, INDICATOR_CELL[1] + half
                board[r, c, WALL], board[r, c, INDICATOR] = 0, 1
        r, c = self._agent
        return board[r : r + VIEW, c : c + VIEW].reshape(-1).copy()

    def _info(self) -> dict[str, Any]:
        return {"phase": self._phase, "has_key": self.has_key, "t": self._t, "success": self.opened}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        self.has_key = self.opened = False
        self._enter_phase(0)
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not 0 <= action < 4:
            raise ValueError(f"action must be in 0..3, got {action}")
        target = self._agent + MOVES[action]
        if not self._blocked(target):
            self._agent = target
        self._t += 1
        self._indicator = False
        reward = 0.0
        if self._phase == 0 and self._key is not None and np.array_equal(self._agent, self._key):
            self.has_key, self._key, self._indicator = True, None, True
        elif self._phase == 2 and self.has_key and not self.opened and np.array_equal(self._agent, self._door):
            reward, self.opened = 1.0, True
        truncated = self._t >= self.max_episode_steps
        if not truncated and self._phase < 2 and self._t >= self._phase_ends[self._phase]:
            self._enter_phase(self._phase + 1)
        return self._observation(), reward, False, truncated, self._info()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        grid = [["#" if w else "." for w in row] for row in self._walls[self._phase]]
        if self._key is not None:
            grid[self._key[0]][self._key[1]] = "K"
        if self._phase == 2:
            grid[self._door[0]][self._door[1]] = "D"
        grid[self._agent[0]][self._agent[1]] = "A"
        header = f"phase {self._phase + 1} t={self._t} key={'yes' if self.has_key else 'no'}"
        return "\n".join([header] + ["".join(row) for row in grid])


def register() -> None:
    """Register ``offbench/KeyToDoor-v0`` with gymnasium (idempotent)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="offbench.envs.keytodoor:KeyToDoorEnv")
