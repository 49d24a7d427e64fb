"""Dataset-source speed and memory: D4RL conversion and loading, the Atari subset in memory.

    python benchmarks/sources.py [--rows 1000000] [--atari-checkpoints 6] [--work DIR]

Targets (issue 3, 2-core CPU): converting a 1M-transition D4RL-layout file into the cache
<= 10 s; loading a cached 1M-transition dataset <= 2 s with peak memory <= 2x the arrays' bytes;
the 500k-transition Atari subset in memory <= 4 GB. The inputs are written here in the upstream
layouts (D4RL v2 HDF5 with gzip datasets and infos/; DQN-replay gzip-compressed .npy
checkpoints with zero padding before each episode), so no network is needed. Each measurement
runs in a fresh Python process; memory is that process's peak resident set (VmHWM) minus its
resident set just before the measured call. Writes benchmarks/results/sources.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np

from offbench.generate.atari import write_npy_gz

HERE = Path(__file__).resolve().parent

MEASURE = textwrap.dedent("""
    import json, sys, time
    from offbench.data import cache

    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    what, name, local = sys.argv[1], sys.argv[2], sys.argv[3]
    before = rss("VmRSS:")
    t0 = time.perf_counter()
    if what == "fetch":
        cache.fetch(name, force=True, local=Path(local) if local else None)
        nbytes = None
    else:
        data = cache.load(name, fetch_missing=False)
        nbytes = sum(a.nbytes for a in (data.observations, data.actions, data.rewards, data.terminals,
                                         data.timeouts, data.episode_starts, data.next_observations,
                                         data.stack_indices) if a is not None)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_extra_bytes": rss("VmHWM:") - before, "array_bytes": nbytes}))
""").replace("import json, sys, time", "import json, sys, time\nfrom pathlib import Path")


def measure(what: str, name: str, env: dict, local: str = "") -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, what, name, local], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_d4rl(path: Path, rows: int, obs_dim: int = 17, act_dim: int = 6) -> None:
    """A D4RL v2 walker2d-sized file: 1000-step episodes ending in timeouts, some in terminals."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(rows, obs_dim)).astype(np.float32)
    timeouts = np.zeros(rows, bool)
    timeouts[999::1000] = True
    terminals = np.zeros(rows, bool)
    terminals[rng.choice(rows, rows // 2000, replace=False)] = True
    with h5py.File(path, "w") as f:
        for k, a in {"observations": obs, "next_observations": np.roll(obs, -1, 0),
                     "actions": rng.uniform(-1, 1, (rows, act_dim)).astype(np.float32),
                     "rewards": rng.uniform(0, 5, rows).astype(np.float32), "terminals": terminals,
                     "timeouts": timeouts, "infos/qpos": rng.normal(size=(rows, 9)).astype(np.float32),
                     "infos/qvel": rng.normal(size=(rows, 9)).astype(np.float32),
                     "infos/action_log_probs": rng.normal(size=rows).astype(np.float32)}.items():
            f.create_dataset(k, data=a, compression="gzip")


def write_dqn_checkpoint(logs: Path, ckpt: int, rows: int) -> None:
    """A dopamine-layout checkpoint: episodes of 400-1600 steps, 3 zero rows before each; frames
    with a moving 8x8 blob on a textured background (compressible, like real Atari frames)."""
    rng = np.random.default_rng(ckpt)
    lengths, used = [], 0
    while used < rows:
        n = int(rng.integers(400, 1600))
        lengths.append(min(n, rows - used - 3))
        used += lengths[-1] + 3
    frames = np.empty((rows, 84, 84), np.uint8)
    frames[:] = (np.arange(84)[None, :] // 12 * 10 + 40).astype(np.uint8)[None]
    t = np.arange(rows)
    y, x = (t * 3) % 76, (t * 5) % 76
    for k in range(8):
        for j in range(8):
            frames[t, y + k, x + j] = 200
    term = np.zeros(rows, np.uint8)
    act = rng.integers(0, 4, rows).astype(np.int32)
    rew = (rng.random(rows) < 0.02).astype(np.float32)
    r = 0
    for n in lengths:
        frames[r : r + 3] = 0
        act[r : r + 3] = 0
        rew[r : r + 3] = 0
        r += 3 + n
        term[r - 1] = 1
    for name, a in (("$store$_observation", frames), ("$store$_action", act), ("$store$_reward", rew),
                    ("$store$_terminal", term), ("add_count", np.array(rows, np.int64)),
                    ("invalid_range", np.arange(rows - 1, rows + 4) % rows)):
        write_npy_gz(logs / f"{name}_ckpt.{ckpt}.gz", a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--atari-checkpoints", type=int, default=6)
    ap.add_argument("--atari-rows", type=int, default=110_000, help="rows per synthetic checkpoint")
    ap.add_argument("--work", type=Path, default=Path("/tmp/offbench-bench-sources"))
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OFFBENCH_HOME": str(work / "cache")}
    results: dict = {"machine": f"{platform.node()} {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
                     "python": platform.python_version()}

    d4rl = work / "walker2d_medium-v2.hdf5"
    if not d4rl.exists():
        write_d4rl(d4rl, args.rows)
    conv = measure("fetch", "walker2d-medium", env, str(d4rl))
    load = measure("load", "walker2d-medium", env)
    results["d4rl"] = {"rows": args.rows, "file_bytes": d4rl.stat().st_size, "convert_s": conv["seconds"],
                       "convert_peak_extra_bytes": conv["peak_extra_bytes"], "load_s": load["seconds"],
                       "load_peak_extra_bytes": load["peak_extra_bytes"], "array_bytes": load["array_bytes"],
                       "load_peak_over_arrays": load["peak_extra_bytes"] / load["array_bytes"]}
    print(json.dumps(results["d4rl"], indent=2), flush=True)

    logs = work / "dqn" / "Breakout" / "1" / "replay_logs"
    logs.mkdir(parents=True, exist_ok=True)
    for c in range(args.atari_checkpoints):
        if not (logs / f"invalid_range_ckpt.{c}.gz").exists():
            write_dqn_checkpoint(logs, c, args.atari_rows)
    registry = work / "datasets.toml"
    registry.write_text(textwrap.dedent(f"""
        [breakout-bench]
        domain = "atari"
        source = "dqn_replay"
        env = "ALE/Breakout-v5"
        max_episode_steps = 108000
        ref_min_return = 1.7
        ref_max_return = 30.5
        target_returns = [90.0]
        base_url = "http://127.0.0.1:9/"
        game = "Breakout"
        run = 1
        checkpoints = {args.atari_checkpoints}
        transitions = 500000
        per_checkpoint = 100000
        trajectories_per_visit = 10
        frame_stack = 4
        num_actions = 4
        seed = 123
    """))
    aenv = {**env, "OFFBENCH_DATASETS": str(registry)}
    t0 = time.perf_counter()
    conv = measure("fetch", "breakout-bench", aenv, str(logs))
    load = measure("load", "breakout-bench", aenv)
    results["atari"] = {"checkpoints": args.atari_checkpoints, "convert_s": conv["seconds"],
                        "convert_peak_extra_bytes": conv["peak_extra_bytes"], "load_s": load["seconds"],
                        "load_peak_extra_bytes": load["peak_extra_bytes"], "array_bytes": load["array_bytes"],
                        "wall_s": time.perf_counter() - t0}
    print(json.dumps(results["atari"], indent=2), flush=True)
    out = HERE / "results" / "sources.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
