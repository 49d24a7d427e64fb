"""ALE Atari with the DQN preprocessing used to record DQN-replay (and by the DT paper).

The base environment is ``ALE/<Game>-v5`` with ``frameskip=1`` and
``repeat_action_probability=0`` (no sticky actions), the minimal action set, and a cap of 108,000
frames. :class:`DQNPreprocessing` then repeats each action 4 times, max-pools the last two
grayscale frames, resizes them to 84x84 (area averaging, as ``cv2.INTER_AREA``), and starts each
episode with up to 30 no-op actions; ``FrameStackObservation`` stacks the last 4 frames:
observations are (4, 84, 84) uint8.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

FRAME = (84, 84)


def register() -> None:
    """Make the ``ALE/...`` ids known to gymnasium (ale-py ships the ROMs)."""
    try:
        import ale_py
    except ImportError as e:
        raise gym.error.DependencyNotInstalled(f"{e}") from None
    gym.register_envs(ale_py)


def resize(frame: np.ndarray) -> np.ndarray:
    """210x160 grayscale -> 84x84 by area averaging."""
    return np.asarray(Image.fromarray(frame).resize(FRAME[::-1], Image.Resampling.BOX), dtype=np.uint8)


class DQNPreprocessing(gym.Wrapper):
    """Action repeat with max-pooling, 84x84 grayscale frames, random no-op starts."""

    def __init__(self, env: gym.Env, frame_skip: int = 4, noop_max: int = 30) -> None:
        super().__init__(env)
        self.frame_skip, self.noop_max = frame_skip, noop_max
        self.ale = env.unwrapped.ale
        h, w = env.unwrapped.ale.getScreenDims()
        self.buffers = [np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)]
        self.observation_space = gym.spaces.Box(0, 255, FRAME, np.uint8)

    def _frame(self) -> np.ndarray:
        return resize(np.maximum(self.buffers[0], self.buffers[1]))

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        _, info = self.env.reset(**kwargs)
        noops = int(self.env.unwrapped.np_random.integers(0, self.noop_max + 1)) if self.noop_max else 0
        for _ in range(noops):
            _, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                _, info = self.env.reset()
        self.ale.getScreenGrayscale(self.buffers[0])
        self.buffers[1][:] = 0
        return self._frame(), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        total, terminated, truncated, info = 0.0, False, False, {}
        for i in range(self.frame_skip):
            _, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if i >= self.frame_skip - 2:
                self.ale.getScreenGrayscale(self.buffers[i - (self.frame_skip - 2)])
            if terminated or truncated:
                break
        return self._frame(), total, terminated, truncated, info


def make_atari(env_id: str, max_frames: int = 108_000, stack: int = 4, **kwargs: Any) -> gym.Env:
    """``env_id`` (e.g. ``ALE/Pong-v5``) with the DQN preprocessing and a ``stack``-frame stack
    (``stack=1``: single frames, as DQN-replay stores them)."""
    register()
    base = gym.make(env_id, max_episode_steps=max_frames, **{"frameskip": 1, "repeat_action_probability": 0.0,
                                                              "full_action_space": False, **kwargs})
    env = DQNPreprocessing(base)
    return gym.wrappers.FrameStackObservation(env, stack) if stack > 1 else env
