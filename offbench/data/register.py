"""``offbench register``: a user's own dataset (D4RL-style HDF5, ``.npz`` with the D4RL keys, a
Minari directory, or an Atari replay directory in DQN-replay's or RL Unplugged's layout) added to
``$OFFBENCH_HOME/local-datasets.toml`` and the cache, so that ``fetch``, ``run``, ``info`` and
``report`` treat it like a built-in. From an Atari replay directory the DT recipe of the built-in
``*-1pct`` sets samples the subset (:data:`ATARI_RECIPE`) over the checkpoints the directory holds.

The data are checked against the evaluation environment's spaces before anything is written;
the dataset's name never replaces a built-in one, nor a registered one unless asked
(``force``). Without reference returns, scores are normalized between the dataset's worst and
best episode returns, and the score's name says so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from offbench.data import cache
from offbench.data.dataset import Dataset
from offbench.data.sources.registered import read_input
from offbench.data.spec import OWN_RANGE_SCORE, SPARSE, all_specs, builtin_specs, register_local
from offbench.envs.factory import env_domain, make_gym_env
from offbench.errors import UsageError

NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def check_name(name: str, force: bool) -> None:
    if not NAME.fullmatch(name) or name.endswith(SPARSE):
        raise UsageError(f"'{name}': a dataset name is lowercase letters, digits, '.', '_' and '-' (not ending "
                         f"in '{SPARSE}', kept for the delayed-reward variants)")
    if name in builtin_specs():
        raise UsageError(f"'{name}' is a built-in dataset; register yours under another name")
    if name in all_specs() and not force:
        raise UsageError(f"'{name}' is already registered on this machine; --force replaces it")


def check_spaces(arrays: dict[str, np.ndarray], env: gym.Env, where: str, env_id: str) -> None:
    """A one-line error naming both shapes unless the data fit the environment's observation and
    action spaces."""
    obs_shape = tuple(arrays["observations"].shape[1:])
    space = env.observation_space
    if space.shape is None or tuple(space.shape) != obs_shape:
        raise UsageError(f"{where}: observations are {obs_shape} wide, but {env_id} observes {space.shape}; "
                         "nothing was registered")
    actions, act_space = arrays["actions"], env.action_space
    if isinstance(act_space, gym.spaces.Discrete):
        if actions.ndim != 1 or actions.dtype.kind not in "iu" or actions.min() < 0 or actions.max() >= act_space.n:
            raise UsageError(f"{where}: {env_id} takes one of {act_space.n} discrete actions; the data's actions "
                             f"are {actions.dtype} {tuple(actions.shape[1:])}; nothing was registered")
    elif tuple(actions.shape[1:]) != tuple(act_space.shape or ()):
        raise UsageError(f"{where}: actions are {tuple(actions.shape[1:])} wide, but {env_id} takes "
                         f"{act_space.shape}; nothing was registered")


#: The DT paper's Atari subset recipe, as the built-in ``*-1pct`` sets use it (``datasets.toml``).
ATARI_RECIPE = {"transitions": 500_000, "per_checkpoint": 100_000, "trajectories_per_visit": 10, "frame_stack": 4,
                "seed": 123}


def replay_layout(path: Path) -> tuple[str, Path, list[int]] | None:
    """(source, directory, checkpoint numbers) of an Atari replay directory, or None if ``path``
    is not one."""
    if not path.is_dir():
        return None
    for source, pattern, number in (("dqn_replay", "$store$_observation_ckpt.*.gz", r"ckpt\.(\d+)\.gz$"),
                                    ("rl_unplugged", "run_*-*-of-*", r"-(\d+)-of-\d+$")):
        for cand in (path, *sorted(p for p in path.rglob("*") if p.is_dir())):
            files = sorted(cand.glob(pattern))
            if files:
                found = [re.search(number, f.name) for f in files]
                return source, cand, sorted(int(m.group(1)) for m in found if m)
    return None


def shard_names(root: Path) -> tuple[int, int] | None:
    """(run, total shards) read from RL Unplugged shard names ``run_R-NNNNN-of-TTTTT`` in ``root``;
    None where there are none."""
    found = [re.search(r"^run_(\d+)-\d+-of-(\d+)$", f.name) for f in root.glob("run_*-*-of-*")]
    return next(((int(m.group(1)), int(m.group(2))) for m in found if m), None)


def register_replay(name: str, source: str, root: Path, ckpts: list[int], env_id: str,
                    env_kwargs: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The DT-recipe subset of an Atari replay directory and the registry parameters that remake it."""
    from offbench.data.sources import FetchContext, get_source
    from offbench.data.spec import DatasetSpec
    from offbench.envs.atari import make_atari

    if ckpts != list(range(ckpts[0], ckpts[0] + len(ckpts))):
        raise UsageError(f"{root}: checkpoints {ckpts[0]}..{ckpts[-1]} are not contiguous (missing some); nothing "
                         "was registered")
    try:
        env = make_atari(env_id, stack=1, **env_kwargs)
    except Exception as e:  # noqa: BLE001  (a missing ROM or ale-py: one line)
        raise UsageError(f"cannot make Atari environment {env_id}: {e}; pip install 'offbench[atari]'") from None
    n_actions = int(env.action_space.n)
    env.close()
    game = env_id.split("/")[-1].split("-")[0]
    run, shards = shard_names(root) or (1, len(ckpts))
    params = {"game": game, "run": run, "first_checkpoint": ckpts[0], "checkpoints": len(ckpts),
              "shards": shards, **ATARI_RECIPE, "num_actions": n_actions, "local_dir": str(root.resolve())}
    spec = DatasetSpec(name, "atari", source, env_id, 108_000, None, None, (), env_kwargs, params=params)
    arrays, attrs = get_source(source)(spec, FetchContext(downloads=root, local=root))
    if int(arrays["actions"].max()) >= n_actions:
        raise UsageError(f"{root}: actions go up to {int(arrays['actions'].max())}, but {env_id} takes {n_actions}; "
                         "nothing was registered")
    return arrays, {**attrs, "params": params}


def register_dataset(name: str, path: Path, env_id: str, ref_min: float | None = None, ref_max: float | None = None,
                     env_kwargs: dict[str, Any] | None = None, force: bool = False) -> dict[str, Any]:
    """Read ``path``, check it against ``env_id``'s spaces, cache it and register it as ``name``;
    return the registry entry."""
    check_name(name, force)
    if (ref_min is None) != (ref_max is None):
        raise UsageError("give both --ref-min and --ref-max (the returns scored 0 and 100), or neither")
    if ref_min is not None and ref_max is not None and not ref_max > ref_min:
        raise UsageError(f"--ref-max ({ref_max}) must be above --ref-min ({ref_min})")
    replay = replay_layout(path)
    if replay is not None:
        return _register_replay(name, path, replay, env_id, ref_min, ref_max, env_kwargs or {})
    arrays, kind = read_input(path)
    env = make_gym_env(env_id, **(env_kwargs or {}))
    try:
        check_spaces(arrays, env, str(path), env_id)
        spec_steps = env.spec.max_episode_steps if env.spec else None
    finally:
        env.close()
    data = Dataset.from_arrays(arrays)
    lowest, best = data.return_range or (0.0, 0.0)  # read_input refuses data without transitions
    score = "normalized score"
    if ref_min is None or ref_max is None:
        ref_min, ref_max, score = lowest, best, OWN_RANGE_SCORE
    longest = int(data.episode_lengths.max())
    attrs = {"origin": str(path.resolve()), "input_kind": kind, "env": env_id}
    digest = cache.save(name, "registered", arrays, attrs)
    entry: dict[str, Any] = {
        "description": f"registered from {path.name} ({kind})", "domain": env_domain(env_id), "source": "registered",
        "env": env_id, "max_episode_steps": int(spec_steps or longest), "ref_min_return": ref_min,
        "ref_max_return": ref_max, "score": score, "target_returns": [round(best, 3)],
        "content_sha256": digest, "path": str(path.resolve()), "kind": kind}
    if env_kwargs:
        entry["env_kwargs"] = env_kwargs
    register_local({name: entry})
    return entry


def _register_replay(name: str, path: Path, replay: tuple[str, Path, list[int]], env_id: str, ref_min: float | None,
                     ref_max: float | None, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    source, root, ckpts = replay
    arrays, attrs = register_replay(name, source, root, ckpts, env_id, env_kwargs)
    params = attrs.pop("params")
    data = Dataset.from_arrays(arrays)
    lowest, best = data.return_range or (0.0, 0.0)
    score = "normalized score"
    if ref_min is None or ref_max is None:
        ref_min, ref_max, score = lowest, best, OWN_RANGE_SCORE
    digest = cache.save(name, source, arrays, {**attrs, "num_actions": params["num_actions"], "env": env_id})
    entry: dict[str, Any] = {
        "description": f"registered from {path.name} ({source} layout, DT recipe)", "domain": "atari", "source": source,
        "env": env_id, "max_episode_steps": 108_000, "ref_min_return": ref_min, "ref_max_return": ref_max,
        "score": score, "target_returns": [round(best, 3)], "content_sha256": digest, "kind": source, **params}
    if env_kwargs:
        entry["env_kwargs"] = env_kwargs
    register_local({name: entry})
    return entry
