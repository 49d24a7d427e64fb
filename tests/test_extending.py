"""Adding an algorithm or a dataset source is one new file: a package outside offbench declares
them as entry points (here a toy source, and the example plug-in's algorithm under another
name), and every command uses them like the built-ins."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import offbench

TOY = '''
"""A toy offbench extension: a dataset source in one file."""
import numpy as np

from offbench.envs.keytodoor import KeyToDoorEnv
from offbench.envs.rollout import random_episode


def build(spec, ctx):
    """Random Key-to-Door episodes, as many as the registry entry says."""
    env, rng = KeyToDoorEnv(), np.random.default_rng(0)
    obs, act, rew, term, trunc, starts = [], [], [], [], [], []
    for i in range(int(spec.params["episodes"])):
        starts.append(len(act))
        for o, a, r, te, tr in random_episode(env, rng, i):
            obs.append(o); act.append(a); rew.append(r); term.append(te); trunc.append(tr)
    arrays = {"observations": np.asarray(obs, np.uint8), "actions": np.asarray(act, np.int64),
              "rewards": np.asarray(rew, np.float32), "terminals": np.asarray(term, bool),
              "timeouts": np.asarray(trunc, bool), "episode_starts": np.asarray(starts, np.int64)}
    return arrays, {"generator": "toy"}
'''

# the algorithm is the example plug-in's (examples/plugin), declared by this package too
ENTRY_POINTS = """[offbench.algorithms]
majority = offbench_linear_bc:LinearBC

[offbench.sources]
toy = toy_offbench:build
"""

REGISTRY = """["toy-doors"]
description = "Key-to-Door episodes from the toy source"
domain = "keytodoor"
source = "toy"
env = "offbench/KeyToDoor-v0"
max_episode_steps = 40
ref_min_return = 0.0
ref_max_return = 1.0
score = "success rate (%)"
target_returns = [1.0]
episodes = 30
"""


def test_a_toy_algorithm_and_source_from_another_package_run_like_built_ins(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "toy_offbench-0.1.dist-info").mkdir(parents=True)
    (site / "toy_offbench.py").write_text(TOY)
    (site / "toy_offbench-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-offbench\nVersion: 0.1\n")
    (site / "toy_offbench-0.1.dist-info" / "entry_points.txt").write_text(ENTRY_POINTS)
    home = tmp_path / "home"
    home.mkdir()
    (home / "local-datasets.toml").write_text(REGISTRY)  # the user's own datasets, read with datasets.toml
    example = Path(__file__).resolve().parents[1] / "examples" / "plugin"
    env = {"PYTHONPATH": f"{site}:{example}", "OFFBENCH_HOME": str(home), "OFFBENCH_RESULTS": str(tmp_path / "r")}
    assert "majority" in offbench("list", "algos", env=env).stdout
    p = offbench("run", "--algo", "majority,bc", "--env", "toy-doors", "--steps", "20", "--eval-episodes", "3",
                 "--workers", "1", env=env)
    assert p.returncode == 0, p.stderr
    info = json.loads(offbench("info", "toy-doors", "--json", env=env).stdout)
    assert info["episodes"] == 30 and info["transitions"] == 30 * 40
    report = offbench("report", "--format", "csv", env=env).stdout.splitlines()
    assert sorted(line.split(",")[1] for line in report[1:]) == ["bc", "majority"]
