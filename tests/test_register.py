"""`offbench register`: a user's own data (.npz, D4RL-style HDF5, Minari directory) used like a
built-in dataset by fetch, run, info and report."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from offbench.data import cache
from tests.test_cli import offbench, one_line_error
from tests.upstream import write_d4rl

LENGTHS = [40, 25, 60]  # Pendulum-v1: observations (3,), actions (1,)


def pendulum_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = sum(LENGTHS)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    timeouts[np.cumsum(LENGTHS) - 1] = True
    return {"observations": obs, "next_observations": np.roll(obs, -1, axis=0),
            "actions": rng.uniform(-1, 1, size=(n, 1)).astype(np.float32),
            "rewards": -rng.uniform(0, 10, size=n).astype(np.float32), "terminals": terminals, "timeouts": timeouts}


def returns(arrays: dict[str, np.ndarray]) -> list[float]:
    ends = np.cumsum(LENGTHS)
    return [float(arrays["rewards"][e - t : e].astype(np.float64).sum()) for e, t in zip(ends, LENGTHS)]


def round_trip(isolated: Path, name: str, flag: str, path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Register, then info, run and report as for a built-in; the cache file is made again from
    the registered path when it is gone."""
    p = offbench("register", name, flag, str(path), "--env", "Pendulum-v1")
    assert p.returncode == 0 and f"{name}: registered" in p.stdout, p.stderr
    data = cache.load(name, fetch_missing=False)
    np.testing.assert_array_equal(data.observations, arrays["observations"])
    np.testing.assert_array_equal(data.actions, arrays["actions"])
    np.testing.assert_array_equal(data.episode_starts, [0, 40, 65])
    spec = cache.run_spec(name)
    assert (spec.ref_min_return, spec.ref_max_return) == pytest.approx((min(returns(arrays)), max(returns(arrays))),
                                                                        rel=1e-6)
    assert spec.env == "Pendulum-v1" and spec.max_episode_steps == 200 and spec.domain == "classic_control"
    info = offbench("info", name)
    assert info.returncode == 0 and str(path.resolve()) in info.stdout
    run = offbench("run", "--algo", "bc,iql", "--env", name, "--steps", "4", "--eval-episodes", "1",
                   "--set", "eval_every=0")
    assert run.returncode == 0 and "2 finished" in run.stdout, run.stderr
    table = json.loads(offbench("report", "--json").stdout)
    assert {(r["dataset"], r["algo"]) for r in table["rows"]} == {(name, "bc"), (name, "iql")}
    digest = cache.info(name)["content_sha256"]
    cache.dataset_path(name).unlink()
    again = offbench("fetch", name)
    assert again.returncode == 0 and cache.info(name)["content_sha256"] == digest  # read again from the path


def test_register_an_npz(isolated: Path, tmp_path: Path) -> None:
    arrays = pendulum_arrays()
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    round_trip(isolated, "my-pendulum", "--from-file", path, arrays)


def test_register_a_d4rl_style_hdf5(isolated: Path, tmp_path: Path) -> None:
    arrays = pendulum_arrays(1)
    path = write_d4rl(tmp_path / "mine.hdf5", arrays)
    round_trip(isolated, "my-pendulum-h5", "--from-file", path, arrays)


@pytest.mark.filterwarnings("ignore::UserWarning")  # minari: no eval_env given (the data name none)
def test_register_a_minari_directory(isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from minari import create_dataset_from_buffers
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    arrays = pendulum_arrays(2)
    buffers, start = [], 0
    for i, t in enumerate(LENGTHS):
        obs = np.concatenate([arrays["observations"][start : start + t], arrays["next_observations"][start + t - 1 :][:1]])
        buffers.append(EpisodeBuffer(id=i, observations=list(obs), actions=list(arrays["actions"][start : start + t]),
                                     rewards=list(arrays["rewards"][start : start + t]),
                                     terminations=[False] * t, truncations=[False] * (t - 1) + [True], infos={}))
        start += t
    ds = create_dataset_from_buffers("mine/pendulum/random-v0", buffers,
                                     observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                                     action_space=gym.spaces.Box(-1, 1, (1,), np.float32), algorithm_name="test",
                                     author="offbench tests", author_email="tests@example.org",
                                     code_permalink="https://example.org/offbench", description="test data")
    directory = Path(ds.storage.data_path).parent
    round_trip(isolated, "my-pendulum-minari", "--from-dir", directory, arrays)


def test_register_refuses_what_does_not_fit_and_replaces_only_with_force(isolated: Path, tmp_path: Path) -> None:
    arrays = pendulum_arrays()
    wide = {**arrays, "observations": np.zeros((sum(LENGTHS), 4), np.float32)}
    wide.pop("next_observations")
    np.savez(tmp_path / "wide.npz", **wide)
    line = one_line_error(offbench("register", "wide", "--from-file", str(tmp_path / "wide.npz"),
                                   "--env", "Pendulum-v1"), 2)
    assert "observations are (4,) wide, but Pendulum-v1 observes (3,)" in line
    assert not (isolated / "cache" / "local-datasets.toml").exists() and not list((isolated / "cache").rglob("wide*"))
    np.savez(tmp_path / "ok.npz", **arrays)
    ok = ["register", "mine", "--from-file", str(tmp_path / "ok.npz"), "--env", "Pendulum-v1"]
    assert offbench(*ok).returncode == 0
    assert "--force" in one_line_error(offbench(*ok), 2)
    assert offbench(*ok, "--force", "--ref-min", "-1500", "--ref-max", "0").returncode == 0
    assert cache.run_spec("mine").ref_min_return == -1500.0
    assert "built-in" in one_line_error(offbench("register", "hopper-medium", *ok[2:]), 2)
    assert "--ref-max" in one_line_error(offbench("register", "other", *ok[2:], "--ref-min", "0"), 2)
    np.savez(tmp_path / "bad.npz", foo=np.zeros(3))
    line = one_line_error(offbench("register", "other", "--from-file", str(tmp_path / "bad.npz"), "--env", "Pendulum-v1"), 1)
    assert "not a dataset .npz, missing observations" in line
    assert "does not exist" in one_line_error(offbench("register", "other", "--from-file", str(tmp_path / "none.npz"),
                                                       "--env", "Pendulum-v1"), 2)


@pytest.mark.parametrize("layout", ["dqn_replay", "rl_unplugged"])
def test_register_an_atari_replay_directory(isolated: Path, tmp_path: Path, layout: str) -> None:
    """A DQN-replay or RL Unplugged directory: the DT recipe over the checkpoints it holds; the
    entry remakes the same file from the directory."""
    pytest.importorskip("ale_py")
    from tests.upstream import dqn_checkpoint, rlu_shard, write_dqn_checkpoint

    root = tmp_path / "replay" / "Pong" / "1" / "replay_logs"
    episodes = {3: [20, 15, 30], 4: [33, 22, 17]}  # checkpoints 3 and 4 only
    for c, lengths in episodes.items():
        arrays = dqn_checkpoint(lengths, seed=c, capacity=sum(lengths) + 3 * len(lengths) + 8)
        if layout == "dqn_replay":
            write_dqn_checkpoint(root, c, arrays)
        else:
            root.mkdir(parents=True, exist_ok=True)
            (root / f"run_1-{c:05d}-of-00050").write_bytes(rlu_shard(c, arrays))
    p = offbench("register", "my-pong", "--from-dir", str(tmp_path / "replay"), "--env", "ALE/Pong-v5")
    assert p.returncode == 0 and "my-pong: registered" in p.stdout, p.stderr
    info = cache.info("my-pong")
    # DQN-replay leaves out the last episode of each buffer (it touches the rows around the write cursor)
    whole = sum(sum(ls[:-1]) if layout == "dqn_replay" else sum(ls) for ls in episodes.values())
    assert info["source"] == layout and info["domain"] == "atari" and info["transitions"] == whole
    data = cache.load("my-pong", fetch_missing=False)
    assert data.stack_indices is not None and data.obs_shape == (4, 84, 84) and data.action_dim == 6
    digest = info["content_sha256"]
    cache.dataset_path("my-pong").unlink()
    assert offbench("fetch", "my-pong").returncode == 0 and cache.info("my-pong")["content_sha256"] == digest
