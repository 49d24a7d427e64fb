"""Build the evaluation environment of a dataset from its ``datasets.toml`` entry."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from offbench.data.dataset import flat_observations
from offbench.data.spec import DatasetSpec
from offbench.envs import keytodoor
from offbench.errors import OffbenchError

EXTRAS = {"mujoco": "mujoco", "atari": "atari", "ogbench": "ogbench", "robotics": "robotics"}
#: Packages whose import registers a domain's environments with gymnasium.
REGISTERS = {"ogbench": "ogbench", "robotics": "gymnasium_robotics"}


def make_gym_env(env_id: str, domain: str = "", **kwargs: Any) -> gym.Env:
    """``gym.make`` with a one-line error (naming the extra to install), and continuous actions
    rescaled to [-1, 1] where the environment's bounds differ (the policies' tanh range)."""
    keytodoor.register()
    try:
        if domain in REGISTERS:
            _import_quietly(REGISTERS[domain])
        is_registered(env_id)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is out of date.*")  # D4RL's data were made on v2-v4 envs
            env = gym.make(env_id, **kwargs)
    except (gym.error.Error, ImportError, ModuleNotFoundError) as e:
        hint = f"; install the '{EXTRAS[domain]}' extra (pip install 'offbench[{EXTRAS[domain]}]')" \
            if domain in EXTRAS else ""
        raise OffbenchError(f"cannot make environment {env_id}: {e}{hint}") from None
    except Exception as e:  # noqa: BLE001  (the environment's own code failed: say so in one line)
        raise OffbenchError(f"cannot make environment {env_id}: its constructor raised {type(e).__name__}"
                            f"{': ' + str(e) if str(e) else ''} (a version mismatch between it and its "
                            "simulator?)") from None
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = FlatDictObservation(env)
    space = env.action_space
    if isinstance(space, gym.spaces.Box) and not (np.all(space.low == -1) and np.all(space.high == 1)):
        with warnings.catch_warnings():  # [-1, 1] is exact in float32: gymnasium's precision warning says nothing
            warnings.filterwarnings("ignore", message=".*precision lowered by casting.*")
            env = gym.wrappers.RescaleAction(env, -1.0, 1.0)
    return env


def make_env(spec: DatasetSpec) -> gym.Env:
    """A fresh evaluation environment for ``spec`` (time limit = the spec's episode cap; Atari:
    frames, with the DQN preprocessing and a frame stack)."""
    if spec.domain == "atari":
        from offbench.envs.atari import make_atari

        try:
            env = make_atari(spec.env, spec.max_episode_steps, int(spec.params.get("frame_stack", 4)), **spec.env_kwargs)
        except (gym.error.Error, ImportError) as e:
            raise OffbenchError(f"cannot make environment {spec.env} for {spec.name}: {e}; install the 'atari' "
                                "extra (pip install 'offbench[atari]')") from None
    else:
        env = make_gym_env(spec.env, spec.domain, max_episode_steps=spec.max_episode_steps, **spec.env_kwargs)
    return DelayedReward(env) if spec.reward == "delayed" else env


class FlatDictObservation(gym.ObservationWrapper):
    """A ``Dict`` of ``Box`` observations as one float32 vector, in the order the data are
    flattened (:func:`offbench.data.dataset.flat_observations`)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        low = flat_observations(_bounds(space, "low"), lead=0)
        high = flat_observations(_bounds(space, "high"), lead=0)
        self.observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        return flat_observations(observation, lead=0).astype(np.float32)


def _bounds(space: gym.Space, which: str) -> Any:
    """The ``low`` or ``high`` bounds of a (nested) ``Dict`` of ``Box`` spaces, as nested dicts."""
    if isinstance(space, gym.spaces.Dict):
        return {k: _bounds(s, which) for k, s in space.spaces.items()}
    if not isinstance(space, gym.spaces.Box):
        raise OffbenchError(f"dict observations are flattened only where every entry is a Box, not {space}")
    return getattr(space, which)


class DelayedReward(gym.Wrapper):
    """Rewards withheld until the episode ends, then paid as their sum (the -sparse datasets).

    The episode's return is unchanged; a return-conditioned policy sees zeros until the last step.
    """

    def reset(self, **kwargs: Any) -> Any:
        self._owed = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._owed += float(reward)
        if terminated or truncated:
            reward, self._owed = self._owed, 0.0
        else:
            reward = 0.0
        return obs, reward, terminated, truncated, info


def _import_quietly(module: str) -> None:
    """Import a package that registers environments without the notices it prints on import
    (gymnasium-robotics prints one per release to standard error)."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        importlib.import_module(module)


def is_registered(env_id: str) -> bool:
    """Whether gymnasium knows ``env_id``, after importing the installed packages that register
    environments offbench evaluates in (gymnasium-robotics, ogbench) if it does not yet."""
    keytodoor.register()
    base = env_id.split(":", 1)[-1]
    if base in gym.registry:
        return True
    for module in REGISTERS.values():
        try:
            _import_quietly(module)
        except ImportError:
            continue
        if base in gym.registry:
            return True
    return False


def env_domain(env_id: str) -> str:
    """The family of a gymnasium environment, from its entry point: ``mujoco`` (Hopper-v5, ...),
    ``classic_control`` (Pendulum-v1), ``box2d``, ``robotics`` (gymnasium-robotics), ``ogbench``,
    ...; ``gymnasium`` when unknown."""
    if not is_registered(env_id):
        return "gymnasium"
    entry = str(gym.spec(env_id).entry_point)
    for package, domain in (("gymnasium_robotics", "robotics"), ("ogbench", "ogbench")):
        if entry.startswith(package):
            return domain
    if "mujoco" in entry:
        return "mujoco"
    found = re.match(r"gymnasium\.envs\.(\w+)", entry)
    return found.group(1) if found else "gymnasium"
