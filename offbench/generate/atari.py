"""Small Atari datasets made offline in the DQN-replay checkpoint format (``offbench generate pong``).

A uniform-random policy plays ``ALE/<Game>-v5`` with the DQN preprocessing (single 84x84 frames,
as DQN-replay stores them); each checkpoint holds whole episodes in dopamine's layout (3 zero
padding rows before each episode, gzip-compressed ``.npy`` files with upstream names). The set is
registered as ``<game>-local`` with the ``dqn_replay`` source reading that directory, so it goes
through exactly the reader and the DT sampling recipe used for the real data.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offbench.data import cache
from offbench.data.spec import all_specs, register_local
from offbench.envs.rollout import random_episode
from offbench.errors import UsageError
from offbench.paths import cache_root, inside

GAMES = {"breakout": "Breakout", "qbert": "Qbert", "pong": "Pong", "seaquest": "Seaquest"}


@dataclass
class AtariPreset:
    checkpoints: int
    episodes_per_checkpoint: int
    transitions: int  # target size of the sampled subset
    trajectories_per_visit: int
    seed: int = 0


ATARI_PRESETS = {
    "tiny": AtariPreset(checkpoints=2, episodes_per_checkpoint=2, transitions=1_000, trajectories_per_visit=1),
    "quick": AtariPreset(checkpoints=5, episodes_per_checkpoint=20, transitions=50_000, trajectories_per_visit=10),
}


def write_npy_gz(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(buf.getbuffer())


def play_checkpoint(env: Any, episodes: int, rng: np.random.Generator, seed: int) -> dict[str, np.ndarray]:
    """``episodes`` random-policy episodes in dopamine's circular-buffer layout (not wrapped)."""
    frames, actions, rewards, terminals = [], [], [], []
    for e in range(episodes):
        for _ in range(3):  # stack size - 1 zero rows before each episode
            frames.append(np.zeros((84, 84), np.uint8))
            actions.append(0)
            rewards.append(0.0)
            terminals.append(0)
        for obs, action, reward, terminated, truncated in random_episode(env, rng, seed + e):
            frames.append(obs)
            actions.append(action)
            rewards.append(reward)
            terminals.append(int(terminated or truncated))
    rows = len(frames)
    capacity = rows + 16  # a buffer not yet full: zeros after the write cursor
    pad = capacity - rows
    return {
        "observation": np.concatenate([np.stack(frames), np.zeros((pad, 84, 84), np.uint8)]),
        "action": np.concatenate([np.asarray(actions, np.int32), np.zeros(pad, np.int32)]),
        "reward": np.concatenate([np.asarray(rewards, np.float32), np.zeros(pad, np.float32)]),
        "terminal": np.concatenate([np.asarray(terminals, np.uint8), np.zeros(pad, np.uint8)]),
        "add_count": np.array(rows, np.int64),
        "invalid_range": np.array([(rows - 1 + i) % capacity for i in range(5)], np.int64),
    }


def generate_atari(game: str, preset: str, log: Callable[[str], None]) -> list[str]:
    """Write the checkpoints, register ``<game>-local`` and convert it into the cache."""
    from offbench.envs.atari import make_atari  # needs the 'atari' extra

    if preset not in ATARI_PRESETS:
        raise UsageError(f"Atari presets: {', '.join(ATARI_PRESETS)} (got '{preset}')")
    p = ATARI_PRESETS[preset]
    title = GAMES[game]
    base = all_specs()[f"{game}-1pct"]
    logs = inside(cache_root(), "generated", "dqn", title, "1", "replay_logs")
    logs.mkdir(parents=True, exist_ok=True)
    env = make_atari(base.env, stack=1)
    rng = np.random.default_rng(p.seed)
    rows = 0
    for c in range(p.checkpoints):
        arrays = play_checkpoint(env, p.episodes_per_checkpoint, rng, seed=p.seed + 1000 * c)
        for element, a in arrays.items():
            prefix = "$store$_" if element in ("observation", "action", "reward", "terminal") else ""
            write_npy_gz(logs / f"{prefix}{element}_ckpt.{c}.gz", a)
        rows = len(arrays["terminal"])
        log(f"{title} checkpoint {c}: {p.episodes_per_checkpoint} random-policy episodes, {rows:,} rows")
    env.close()
    name = f"{game}-local"
    entry = {"description": f"{title}: random-policy episodes in ALE, DQN-replay format ({preset} preset)",
             "domain": "atari", "source": "dqn_replay", "env": base.env, "env_kwargs": base.env_kwargs,
             "max_episode_steps": base.max_episode_steps, "ref_min_return": base.ref_min_return,
             "ref_max_return": base.ref_max_return, "score": base.score, "target_returns": list(base.target_returns),
             "base_url": "file:///", "local_dir": str(logs), "game": title, "run": 1, "checkpoints": p.checkpoints,
             "transitions": p.transitions, "per_checkpoint": rows, "trajectories_per_visit": p.trajectories_per_visit,
             "frame_stack": 4, "num_actions": int(base.params["num_actions"]), "seed": p.seed,
             "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "command": f"offbench generate {game} --preset {preset}"}
    register_local({name: entry})
    cache.fetch(name, force=True)
    log(f"{name}: {cache.info(name)['transitions']:,} transitions")
    return [name]
