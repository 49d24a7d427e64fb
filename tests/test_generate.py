"""`offbench generate` (D4RL recipe, SAC behaviour policies) and every algorithm through `offbench run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from offbench.data import cache
from offbench.data.spec import all_specs
from tests.test_cli import offbench

ALGOS = ["bc", "pbc", "rwr", "awr", "td3bc", "iql", "cql", "awac", "dt", "bcq", "bear", "brac"]
# 900 SAC steps barely learn, so no checkpoint need lie near a third of the way to the expert:
# medium_window=100 accepts the closest one (the choice itself is tested by test_medium_*).
TINY = ["--set", "sac_steps=900", "--set", "start_steps=300", "--set", "checkpoint_every=300",
        "--set", "eval_episodes=1", "--set", "transitions=1200", "--set", "hidden=[32, 32]",
        "--set", "medium_window=100"]


@pytest.fixture(scope="module")
def pendulum_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generation shared by the tests below (Pendulum-v1: no MuJoCo needed)."""
    home = tmp_path_factory.mktemp("home")
    p = subprocess.run([sys.executable, "-m", "offbench", "generate", "Pendulum-v1", "--preset", "tiny", *TINY],
                       capture_output=True, text=True, env={**__import__("os").environ, "OFFBENCH_HOME": str(home)},
                       timeout=600)
    assert p.returncode == 0, p.stderr
    return home


def test_generate_writes_every_level_with_the_recipe(pendulum_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("OFFBENCH_HOME", str(pendulum_home))
    specs = all_specs()
    names = [f"pendulum-{lv}-local" for lv in ("random", "medium", "medium-replay", "medium-expert", "expert")]
    assert all(n in specs and specs[n].source == "generated" for n in names)
    assert "pendulum-medium-local-sparse" in specs
    assert specs["pendulum-medium-local"].domain == "classic_control"  # not MuJoCo: named after gymnasium's family
    d = {n.split("-", 1)[1].rsplit("-", 1)[0]: cache.load(n, fetch_missing=False) for n in names}
    for lv in ("random", "medium", "expert"):
        assert len(d[lv]) == 1200 and d[lv].next_observations is not None
    assert np.abs(d["random"].actions).max() <= 1.0
    spec = cache.run_spec("pendulum-medium-local")
    assert spec.ref_min_return == pytest.approx(d["random"].episode_returns[:-1].mean(), rel=0.2)
    recipe = cache.info("pendulum-medium-local")["recipe"]
    medium_step = int(recipe.split("medium = step ")[1].split()[0])
    assert len(d["medium-replay"]) == medium_step  # the replay buffer up to the medium checkpoint
    # medium-expert: medium up to its last whole episode, then the expert rollouts
    whole = d["medium"].episode_ends[d["medium"].terminals[d["medium"].episode_ends - 1] |
                                     d["medium"].timeouts[d["medium"].episode_ends - 1]].max()
    np.testing.assert_array_equal(d["medium-expert"].observations, np.concatenate(
        [d["medium"].observations[:whole], d["expert"].observations]))
    assert specs["pendulum-expert-local"].target_returns[0] == pytest.approx(1.1 * spec.ref_max_return, abs=0.1)


def test_every_algorithm_trains_and_evaluates_identically_twice(pendulum_home: Path, tmp_path: Path) -> None:
    env = {"OFFBENCH_HOME": str(pendulum_home)}
    args = ["run", "--algo", ",".join(ALGOS), "--env", "pendulum-medium-replay-local", "--steps", "12",
            "--eval-episodes", "1", "--set", "eval_every=6", "--set", "batch_size=32", "--set", "dt.context=5",
            "--workers", "2"]
    for out in ("a", "b"):
        p = offbench(*args, "--results", str(tmp_path / out), env=env)
        assert p.returncode == 0, p.stderr
        assert f"{len(ALGOS)} finished" in p.stdout
    for algo in ALGOS:
        [a] = (tmp_path / "a" / "pendulum-medium-replay-local" / algo).glob("*/seed-0/metrics.jsonl")
        b = tmp_path / "b" / a.relative_to(tmp_path / "a")
        assert a.read_text() == b.read_text(), algo  # fixed seed -> identical metrics on CPU
        summary = json.loads((a.parent / "summary.json").read_text())
        assert np.isfinite(summary["score_last"]) and np.isfinite(summary["score_best"])
    p = offbench("report", "--results", str(tmp_path / "a"), "--format", "csv", env=env)
    assert p.returncode == 0 and p.stdout.count("pendulum-medium-replay-local") == len(ALGOS)


def test_plugin_example_installs_and_runs(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "plugin"
    target = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(example)], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    env = {"PYTHONPATH": str(target)}
    listing = offbench("list", "algos", env=env)
    assert "linear-bc" in listing.stdout
    p = offbench("run", "--algo", "linear-bc", "--env", "keytodoor-1k", "--steps", "30", "--eval-episodes", "5",
                 "--results", str(tmp_path / "r"), env=env)
    assert p.returncode == 0, p.stderr
    assert list((tmp_path / "r" / "keytodoor-1k" / "linear-bc").glob("*/seed-0/summary.json"))


def test_generate_rejects_bad_input() -> None:
    from tests.test_cli import one_line_error

    assert "levels:" in one_line_error(offbench("generate", "Pendulum-v1", "--levels", "medium,bogus"), 2)
    assert "Box" in one_line_error(offbench("generate", "CartPole-v1", "--preset", "tiny"), 2)
    assert "valid keys" in one_line_error(offbench("generate", "Pendulum-v1", "--set", "steps=5"), 2)


def test_d4rl_dataset_trains_and_evaluates_in_real_mujoco(tmp_path: Path) -> None:
    pytest.importorskip("mujoco")
    from tests.upstream import d4rl_arrays, write_d4rl

    path = write_d4rl(tmp_path / "hopper_medium-v2.hdf5", d4rl_arrays([300, 200, 400], obs_dim=11, act_dim=3))
    assert offbench("fetch", "hopper-medium", "--from-file", str(path)).returncode == 0
    p = offbench("run", "--algo", "td3bc,iql,bcq,bear,brac", "--env", "hopper-medium", "--steps", "10",
                 "--eval-episodes", "2", "--set", "brac.behavior_steps=5", "--results", str(tmp_path / "r"),
                 "--workers", "1")
    assert p.returncode == 0, p.stderr
    for algo in ("td3bc", "iql", "bcq", "bear", "brac"):
        [s] = (tmp_path / "r" / "hopper-medium" / algo).glob("*/seed-0/summary.json")
        summary = json.loads(s.read_text())
        # D4RL normalization: 100 * (R + 20.272305) / (3234.3 + 20.272305); a barely trained hopper falls early
        assert -5 < summary["score_last"] < 20


def _checkpoints(returns: list[float]) -> list:
    from offbench.generate.sac import Checkpoint

    return [Checkpoint(1000 * (i + 1), r, {}) for i, r in enumerate(returns)]


def test_medium_is_a_third_of_the_way_from_random_to_expert_with_negative_returns() -> None:
    """Pendulum-like returns (random -1200, expert -122): a third of the expert's return (-41) is
    better than the expert itself, so "closest to expert / 3" picked the expert as medium."""
    from offbench.generate.d4rl import pick_medium

    expert, medium = pick_medium(_checkpoints([-1500, -1100, -800, -400, -122]), random_return=-1200.0, window=20)
    assert expert.eval_return == -122 and medium.eval_return == -800  # 100 * 400 / 1078 = 37 of 100
    # positive returns: the same rule (random 0, expert 3000 -> medium near 1000)
    expert, medium = pick_medium(_checkpoints([200, 900, 1500, 3000, 2500]), random_return=0.0, window=20)
    assert (expert.eval_return, medium.eval_return) == (3000, 900)
    # medium comes from the run up to the expert, never after it
    _, medium = pick_medium(_checkpoints([3000, 1000]), random_return=0.0, window=100)
    assert medium.eval_return == 3000


def test_medium_is_refused_when_no_checkpoint_lies_near_it() -> None:
    from offbench.generate.d4rl import pick_medium
    from offbench.errors import OffbenchError

    with pytest.raises(OffbenchError, match="no SAC checkpoint lies near a third") as err:
        pick_medium(_checkpoints([-1210, -1190, -122]), random_return=-1200.0, window=20)
    assert "\n" not in str(err.value)
    with pytest.raises(OffbenchError, match="does not beat the random policy"):
        pick_medium(_checkpoints([-1500, -1300]), random_return=-1200.0, window=20)


def test_rescaled_actions_raise_no_precision_warning() -> None:
    import warnings

    from offbench.envs.factory import make_gym_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        env = make_gym_env("Pendulum-v1")
    assert env.action_space.low.tolist() == [-1.0] and env.action_space.high.tolist() == [1.0]
