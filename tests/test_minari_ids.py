"""Any Minari dataset by id (``minari:<id>``), with no datasets.toml entry: the evaluation
environment, references and episode cap come from the dataset's own metadata."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from offbench.data import cache
from tests.test_cli import offbench, one_line_error

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),  # minari: eval_env not given (the env is)
              pytest.mark.filterwarnings("ignore:.*is out of date:DeprecationWarning")]  # InvertedPendulum-v4, as named

LENGTHS = [30, 45, 20]


def make(dataset_id: str, env_id: str, discrete: bool, refs: tuple[float, float] | None = None) -> list[float]:
    """A small dataset for ``env_id`` made through minari's own API; its episodes' returns."""
    import minari
    from minari import create_dataset_from_buffers
    from minari.data_collector import EpisodeBuffer

    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    buffers, returns = [], []
    for i, t in enumerate(LENGTHS):
        obs = rng.normal(size=(t + 1, *env.observation_space.shape)).astype(np.float32)
        actions = rng.integers(0, env.action_space.n, t) if discrete else \
            rng.uniform(-1, 1, (t, *env.action_space.shape)).astype(np.float32)
        rewards = rng.uniform(0, 1, t)
        returns.append(float(rewards.sum()))
        buffers.append(EpisodeBuffer(id=i, observations=list(obs), actions=list(actions), rewards=list(rewards),
                                     terminations=[False] * (t - 1) + [True], truncations=[False] * t, infos={}))
    create_dataset_from_buffers(dataset_id, buffers, env=env_id, algorithm_name="test", author="offbench tests",
                                author_email="tests@example.org", code_permalink="https://example.org/offbench",
                                description="offbench test data")
    if refs is not None:
        minari.load_dataset(dataset_id).storage.update_metadata({"ref_min_score": refs[0], "ref_max_score": refs[1]})
    return returns


@pytest.mark.parametrize("dataset_id, env_id, discrete, algos, refs", [
    ("test/cartpole/random-v0", "CartPole-v1", True, "bc,cql", (9.0, 500.0)),
    # no references in the metadata: the data's own range, and DT's target the best episode's return
    ("test/invertedpendulum/random-v0", "InvertedPendulum-v4", False, "bc,iql,dt", None),
])
def test_any_minari_id_fetches_runs_and_reports(minari_root: Path, dataset_id: str, env_id: str, discrete: bool,
                                                algos: str, refs: tuple[float, float] | None) -> None:
    returns = make(dataset_id, env_id, discrete, refs)
    name = f"minari:{dataset_id}"
    p = offbench("fetch", name)
    assert p.returncode == 0 and "cached" in p.stdout, p.stderr
    spec = cache.run_spec(name)
    assert spec.env == env_id and spec.max_episode_steps == gym.spec(env_id).max_episode_steps
    low, high = refs if refs else (min(returns), max(returns))  # no references: the data's own range
    assert (spec.ref_min_return, spec.ref_max_return) == pytest.approx((low, high), rel=1e-6)
    data = cache.load(name, fetch_missing=False)
    assert data.discrete_actions == discrete
    run = offbench("run", "--algo", algos, "--env", name, "--steps", "4", "--eval-episodes", "2",
                   "--set", "eval_every=0", *(["--set", "dt.embed_dim=16"] if "dt" in algos else []))
    assert run.returncode == 0 and f"{len(algos.split(','))} finished" in run.stdout, run.stderr
    report = json.loads(offbench("report", "--json").stdout)
    assert {r["dataset"] for r in report["rows"]} == {name}
    summaries = [json.loads(s.read_text()) for s in (minari_root.parent / "results").glob("*/*/*/seed-0/summary.json")]
    assert len(summaries) == len(algos.split(","))
    for s in summaries:
        assert s["dataset"] == name and s["score_last"] == pytest.approx(spec.normalize(s["return_last"]))
    status = json.loads(offbench("status", "--json").stdout)
    assert {g["dataset"] for g in status["groups"]} == {name}
    assert offbench("info", name).returncode == 0


def test_an_unknown_minari_id_names_the_closest_local_ones(minari_root: Path) -> None:
    make("test/cartpole/random-v0", "CartPole-v1", True)
    line = one_line_error(offbench("fetch", "minari:test/cartpole/randm-v0"), 2)
    assert "unknown minari dataset 'test/cartpole/randm-v0'" in line and "test/cartpole/random-v0" in line
    line = one_line_error(offbench("fetch", "nosuch:thing"), 2)
    assert "catalogues: minari:" in line


def test_a_minari_id_without_an_environment_says_how_to_register_it(minari_root: Path) -> None:
    import minari

    make("test/cartpole/noenv-v0", "CartPole-v1", True)
    meta_path = Path(minari.load_dataset("test/cartpole/noenv-v0").storage.data_path) / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta.pop("env_spec", None)
    meta.pop("eval_env_spec", None)
    meta_path.write_text(json.dumps(meta))
    line = one_line_error(offbench("fetch", "minari:test/cartpole/noenv-v0"), 1)
    assert "names no environment" in line and "offbench register" in line


def test_listing_an_unreachable_remote_catalogue_is_one_line(minari_root: Path) -> None:
    """The remote catalogue is listed when it answers (not reachable from the test machine); when
    it does not, one line names it."""
    line = one_line_error(offbench("list", "datasets", "--remote", "minari"), 1)
    assert "the remote Minari catalogue hf://offbench-test-nonexistent did not answer" in line
    assert "--remote lists datasets" in one_line_error(offbench("list", "algos", "--remote", "minari"), 2)
