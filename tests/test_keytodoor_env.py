"""Key-to-Door: phases, rewards with and without the key, observation encoding, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from offbench.envs.keytodoor import KeyToDoorEnv

UP, RIGHT, DOWN, LEFT = range(4)


def path_to(src: np.ndarray, dst: np.ndarray) -> list[int]:
    """Actions that walk from ``src`` to ``dst`` (rows first, then columns)."""
    dr, dc = int(dst[0] - src[0]), int(dst[1] - src[1])
    return [DOWN if dr > 0 else UP] * abs(dr) + [RIGHT if dc > 0 else LEFT] * abs(dc)


def away_move(env: KeyToDoorEnv) -> int:
    """A move that does not land on the phase's object (so the agent can wait safely)."""
    for a, delta in enumerate([(-1, 0), (0, 1), (1, 0), (0, -1)]):
        nxt = np.clip(env._agent + delta, 0, env.room_size - 1)
        if env._object is None or not np.array_equal(nxt, env._object):
            return a
    raise AssertionError("no safe move")


def play(env: KeyToDoorEnv, seed: int, take_key: bool) -> tuple[float, bool, bool, list[dict]]:
    obs, info = env.reset(seed=seed)
    infos = [info]
    plan = path_to(env._agent, env._object) if take_key else []
    total, terminated, truncated = 0.0, False, False
    while not (terminated or truncated):
        if info["phase"] == 0 and plan:
            action = plan.pop(0)
        elif info["phase"] == 2:
            action = path_to(env._agent, env._object)[0]
        else:
            action = away_move(env)
        obs, r, terminated, truncated, info = env.step(action)
        infos.append(info)
        total += r
    return total, terminated, truncated, infos


@pytest.mark.parametrize("seed", range(5))
def test_key_then_door_succeeds(seed: int) -> None:
    total, terminated, truncated, infos = play(KeyToDoorEnv(), seed, take_key=True)
    assert total == 1.0 and terminated and not truncated
    assert [i["phase"] for i in infos[:17]] == [0] * 8 + [1] * 8 + [2]  # phases 1 and 2 last 8 steps
    assert infos[-1]["has_key"]


@pytest.mark.parametrize("seed", range(5))
def test_door_without_key_gives_nothing(seed: int) -> None:
    total, terminated, truncated, infos = play(KeyToDoorEnv(), seed, take_key=False)
    assert total == 0.0 and terminated and not infos[-1]["has_key"]


def test_episode_truncated_at_24_steps_without_door() -> None:
    env = KeyToDoorEnv()
    env.reset(seed=3)
    steps, done = 0, False
    while not done:
        _, r, terminated, truncated, _ = env.step(away_move(env))
        steps += 1
        done = terminated or truncated
    assert steps == 24 and truncated and not terminated and r == 0.0


def test_observation_encoding_hides_the_key_after_phase_one() -> None:
    env = KeyToDoorEnv()
    obs, _ = env.reset(seed=0)
    offsets = 81
    assert obs.shape == (88,) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert obs[:offsets].sum() == 1 and obs[offsets + 4] == 1 and obs[offsets + 4 :].sum() == 1
    dr, dc = divmod(int(obs[:offsets].argmax()), 9)
    assert (dr - 4, dc - 4) == tuple(env._object - env._agent)  # the key's offset from the agent
    row, col = env._agent
    assert obs[offsets : offsets + 4].tolist() == [row == 0, col == 4, row == 4, col == 0]  # walls
    for action in path_to(env._agent, env._object):
        obs, *_ = env.step(action)
    assert obs[:offsets].sum() == 0  # the key is gone once picked up
    while env._phase < 2:
        obs, *_ = env.step(away_move(env))
    with_key = obs.copy()
    env.has_key = False  # the same state without the key looks exactly the same
    assert np.array_equal(env._observation(), with_key)


def test_random_policy_success_rate_is_calibrated(kd1k_arrays: dict) -> None:
    starts = kd1k_arrays["episode_starts"]
    returns = np.add.reduceat(kd1k_arrays["rewards"].astype(float), starts)
    assert 0.015 <= returns.mean() <= 0.06  # paper: 3.1%


def test_wall_bits_follow_the_agent() -> None:
    env = KeyToDoorEnv(phase_lengths=(20, 8, 8))
    env.reset(seed=1)
    env._object = None
    for _ in range(5):  # walk into the top-left corner
        env.step(UP)
        env.step(LEFT)
    obs = env._observation()
    assert tuple(env._agent) == (0, 0) and obs[81:85].tolist() == [1, 0, 0, 1]
    env.step(DOWN)
    env.step(RIGHT)
    assert env._observation()[81:85].tolist() == [0, 0, 0, 0]


def test_invalid_parameters_and_actions_are_rejected() -> None:
    with pytest.raises(ValueError):
        KeyToDoorEnv(room_size=1)
    with pytest.raises(ValueError):
        KeyToDoorEnv(phase_lengths=(1, 2))
    env = KeyToDoorEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(4)
