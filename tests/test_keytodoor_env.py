"""Key-to-Door on TVT's layout: phases, the door with and without the key, the egocentric view,
the fixed sets of start and key cells, and the random policy's calibration."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from offbench.envs.keytodoor import DOOR, INDICATOR, KEY, VIEW, WALL, KeyToDoorEnv

NORTH, SOUTH, WEST, EAST = range(4)
DELTAS = {NORTH: (-1, 0), SOUTH: (1, 0), WEST: (0, -1), EAST: (0, 1)}


def shortest_path(env: KeyToDoorEnv, goal: tuple[int, int]) -> list[int]:
    """Actions from the agent to ``goal`` in the current room (breadth-first over open cells)."""
    start = tuple(int(x) for x in env._agent)
    prev: dict[tuple[int, int], tuple[tuple[int, int], int] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        for a, (dr, dc) in DELTAS.items():
            nxt = (cell[0] + dr, cell[1] + dc)
            if nxt not in prev and (nxt == goal or not env._blocked(np.array(nxt))):
                prev[nxt] = (cell, a)
                queue.append(nxt)
    path, cell = [], goal
    while prev[cell] is not None:
        cell, a = prev[cell]  # type: ignore[misc]
        path.append(a)
    return path[::-1]


def view(obs: np.ndarray) -> np.ndarray:
    return obs.reshape(VIEW, VIEW, 4)


def play(env: KeyToDoorEnv, seed: int, take_key: bool) -> tuple[float, list[dict], list[float]]:
    """Fetch the key (or not), wait out the distractor, then walk to the door and stay there."""
    env.reset(seed=seed)
    plan = shortest_path(env, tuple(env._key)) if take_key else []
    infos, rewards, done, info = [], [], False, {"phase": 0}
    while not done:
        if info["phase"] == 0 and plan:
            action = plan.pop(0)
        elif info["phase"] == 2:
            action = NORTH  # the door is two cells north of the door room's start
        else:
            action = SOUTH if info["phase"] == 0 else WEST  # keep away from the key; wander
        _, r, terminated, truncated, info = env.step(action)
        assert not terminated  # only the clock ends an episode (TVT)
        infos.append(info)
        rewards.append(r)
        done = truncated
    return sum(rewards), infos, rewards


@pytest.mark.parametrize("seed", range(6))
def test_key_then_door_succeeds_once(seed: int) -> None:
    env = KeyToDoorEnv()
    total, infos, rewards = play(env, seed, take_key=True)
    assert total == 1.0 and infos[-1]["success"] and infos[-1]["has_key"]
    assert len(infos) == 40  # 15 + 10 + 15 steps, every phase at its full length
    assert [i["phase"] for i in infos[:26]] == [0] * 14 + [1] * 10 + [2] * 2  # a phase's last step returns the next's
    assert rewards.index(1.0) == 26  # the second north move of the door phase enters the door


@pytest.mark.parametrize("seed", range(6))
def test_without_the_key_the_door_blocks_and_pays_nothing(seed: int) -> None:
    env = KeyToDoorEnv()
    total, infos, _ = play(env, seed, take_key=False)
    assert total == 0.0 and not infos[-1]["has_key"]
    assert tuple(env._agent) == (2, 5)  # north of the start, stopped by the closed door


def test_starts_keys_and_fixed_rooms_follow_tvt() -> None:
    env = KeyToDoorEnv()
    starts, keys = set(), set()
    for seed in range(400):
        env.reset(seed=seed)
        starts.add(tuple(env._agent))
        keys.add(tuple(env._key))
    assert starts == {(r, c) for r in (4, 5) for c in range(3, 8)}  # TVT's 10 start cells
    assert keys == {(r, c) for r in (1, 2) for c in range(3, 8)}  # TVT's 10 key cells
    env.reset(seed=0)
    for _ in range(15):
        env.step(SOUTH)
    assert env._phase == 1 and tuple(env._agent) == (5, 5)  # the distractor's fixed start
    for _ in range(10):
        env.step(WEST)
    assert env._phase == 2 and tuple(env._agent) == (3, 5)  # the door room's fixed start


def test_egocentric_view_walls_key_door_and_indicator() -> None:
    env = KeyToDoorEnv()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (100,) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    v = view(obs)
    r, c = env._agent
    for i in range(VIEW):  # walls are where the board has them; off the board is floor
        for j in range(VIEW):
            rr, cc = r + i - 2, c + j - 2
            on_board = 0 <= rr < 7 and 0 <= cc < 11
            assert v[i, j, WALL] == (on_board and env._walls[0][rr, cc])
    # walk to the key: it is seen where it lies relative to the agent, then picked up
    path = shortest_path(env, tuple(env._key))
    for action in path[:-1]:
        obs, *_ = env.step(action)
    dr, dc = np.array(env._key) - env._agent
    assert view(obs)[2 + dr, 2 + dc, KEY] == 1 and view(obs)[..., KEY].sum() == 1
    obs, *_ = env.step(path[-1])
    v = view(obs)
    assert v[..., KEY].sum() == 0 and env.has_key
    dr, dc = 0 - env._agent[0], 5 - env._agent[1]  # the pickup indicator replaces the wall at (0, 5) once
    assert v[2 + dr, 2 + dc, INDICATOR] == 1 and v[2 + dr, 2 + dc, WALL] == 0
    obs, *_ = env.step(SOUTH)
    assert view(obs)[..., INDICATOR].sum() == 0
    while env._phase < 2:
        obs, *_ = env.step(WEST)
    assert view(obs)[0, 2, DOOR] == 1  # the door, two cells north
    with_key = obs.copy()
    env.has_key = False  # holding the key is never observed
    assert np.array_equal(env._observation(), with_key)


def test_random_policy_success_rate_is_calibrated(kd1k_arrays: dict) -> None:
    starts = kd1k_arrays["episode_starts"]
    returns = np.add.reduceat(kd1k_arrays["rewards"].astype(float), starts)
    assert len(starts) == 1000 and (np.diff(np.r_[starts, len(kd1k_arrays["rewards"])]) == 40).all()
    assert 0.015 <= returns.mean() <= 0.06  # paper: 3.1%; 1,000,000 episodes measure 2.81%


def test_invalid_parameters_and_actions_are_rejected() -> None:
    with pytest.raises(ValueError):
        KeyToDoorEnv(phase_lengths=(1, 2))
    with pytest.raises(ValueError):
        KeyToDoorEnv(phase_lengths=(15, 0, 15))
    env = KeyToDoorEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(4)
