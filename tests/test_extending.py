"""Adding an algorithm or a dataset source is one new file: a package outside offbench declares
them as entry points, and every command uses them like the built-ins."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import offbench

TOY = '''
"""A toy offbench extension: an algorithm and a dataset source in one file."""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from offbench.algos.base import AlgoConfig, TransitionAlgorithm
from offbench.envs.keytodoor import KeyToDoorEnv
from offbench.envs.rollout import random_episode


@dataclass
class MajorityConfig(AlgoConfig):
    lr: float = 1e-2
    normalize_obs: bool = False


class Majority(TransitionAlgorithm):
    """Logistic regression from states to actions."""

    Config = MajorityConfig
    STATE = ("net", "optim")

    def __init__(self, config, data, spec, device):
        super().__init__(config, data, spec, device)
        self.net = torch.nn.Linear(self.obs_dim, self.action_dim).to(device)
        self.optim = torch.optim.SGD(self.net.parameters(), lr=config.lr)

    def update(self, batch):
        b = self.tensors(batch)
        loss = F.cross_entropy(self.net(b["obs"]), b["actions"])
        self.optim.zero_grad()
        loss.backward()
        self.optim.step()
        return {"loss": loss.detach()}

    def act(self, obs, generator):
        return self.net(obs).argmax(-1)


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

ENTRY_POINTS = """[offbench.algorithms]
majority = toy_offbench:Majority

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
    env = {"PYTHONPATH": str(site), "OFFBENCH_HOME": str(home), "OFFBENCH_RESULTS": str(tmp_path / "r")}
    assert "majority" in offbench("list", "algos", env=env).stdout
    p = offbench("run", "--algo", "majority,bc", "--env", "toy-doors", "--steps", "20", "--eval-episodes", "3",
                 "--workers", "1", env=env)
    assert p.returncode == 0, p.stderr
    info = json.loads(offbench("info", "toy-doors", "--json", env=env).stdout)
    assert info["episodes"] == 30 and info["transitions"] == 30 * 40
    report = offbench("report", "--format", "csv", env=env).stdout.splitlines()
    assert sorted(line.split(",")[1] for line in report[1:]) == ["bc", "majority"]
