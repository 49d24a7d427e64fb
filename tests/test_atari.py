"""Atari end to end offline: a tiny Pong set in DQN-replay format, DT/BC/CQL, evaluation in ALE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ale_py")

from offbench.data import cache  # noqa: E402
from tests.test_cli import offbench  # noqa: E402


@pytest.fixture(scope="module")
def pong_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("atari")
    p = subprocess.run([sys.executable, "-m", "offbench", "generate", "pong", "--preset", "tiny"], capture_output=True,
                       text=True, env={**os.environ, "OFFBENCH_HOME": str(home)}, timeout=600)
    assert p.returncode == 0, p.stderr
    return home


def test_generated_pong_is_dqn_replay_format_and_frames_are_stored_once(pong_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("OFFBENCH_HOME", str(pong_home))
    logs = pong_home / "generated" / "dqn" / "Pong" / "1" / "replay_logs"
    assert (logs / "$store$_observation_ckpt.0.gz").is_file() and (logs / "invalid_range_ckpt.1.gz").is_file()
    data = cache.load("pong-local", fetch_missing=False)
    assert data.observations.shape[1:] == (84, 84) and data.obs_shape == (4, 84, 84)
    assert data.attrs["num_actions"] == 6 and data.discrete_actions
    s = data.episode_starts[-1]
    stacked = data.states(np.array([s, s + 5]))
    assert stacked.shape == (2, 4, 84, 84) and not stacked[0, :3].any()  # zero frames before the start
    np.testing.assert_array_equal(stacked[1], data.observations[s + 2 : s + 6])
    # the ALE frames are real screens: 84x84 grayscale with more than one intensity
    assert len(np.unique(data.observations[s + 5])) > 2


def test_dt_bc_cql_train_and_evaluate_in_ale_then_report_gamer_normalized(pong_home: Path, tmp_path: Path) -> None:
    env = {"OFFBENCH_HOME": str(pong_home)}
    p = offbench("run", "--algo", "dt,bc,cql,qrdqn,rem,bcq,gptbc", "--env", "pong-local", "--steps", "3", "--eval-episodes", "1",
                 "--set", "batch_size=4", "--set", "dt.n_layers=1", "--set", "dt.context=1", "--set", "gptbc.n_layers=1",
                 "--results", str(tmp_path), "--workers", "1", env=env)
    assert p.returncode == 0, p.stderr
    for algo in ("dt", "bc", "cql", "qrdqn", "rem", "bcq", "gptbc"):
        [s] = (tmp_path / "pong-local" / algo).glob("*/seed-0/summary.json")
        summary = json.loads(s.read_text())
        expected = 100 * (summary["return_last"] - (-20.7)) / (14.6 - (-20.7))
        assert summary["score_last"] == pytest.approx(expected) and -21 <= summary["return_last"] <= 21
    cfg = json.loads(next((tmp_path / "pong-local" / "dt").glob("*/seed-0/config.json")).read_text())["config"]
    assert cfg["context"] == 1 and cfg["n_heads"] == 8 and cfg["activation"] == "gelu"  # Atari preset + ablation
    md = offbench("report", "--results", str(tmp_path), "--format", "md", env=env).stdout
    assert "human-gamer normalized score" in md and "pong-local" in md


def test_atari_presets_of_dt_and_cql() -> None:
    from offbench.algos import get_algorithm
    from offbench.data.spec import get_spec

    dt = get_algorithm("dt").Config.for_dataset(get_spec("pong-1pct"))
    assert (dt.context, dt.batch_size, dt.n_layers, dt.n_heads, dt.lr, tuple(dt.betas), dt.weight_decay) == \
        (50, 512, 6, 8, 6e-4, (0.9, 0.95), 0.1)
    breakout = get_algorithm("dt").Config.for_dataset(get_spec("breakout-1pct"))
    assert breakout.context == 30 and breakout.recipe == "paper"
    # kzl atari/run.sh: 5 epochs; Pong 5 x ceil((500k - 150) / 512), the others 5 x ceil((500k - 90) / 128)
    # (the budget was 20k steps for every game before the recipes); minGPT's grad clip, init and positions
    assert (dt.steps, breakout.steps, dt.grad_clip, dt.init, dt.positions, dt.embed_ln, dt.embed_tanh) == \
        (4_885, 19_530, 1.0, "mingpt", "global+token", False, True)
    cql = get_algorithm("cql").Config.for_dataset(get_spec("breakout-1pct"))
    assert cql.alpha == 4.0 and cql.target_update_every == 2000
