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


def test_a_d4rl_namespace_name_flattens_dict_observations_and_evaluates_where_the_data_say(
        minari_root: Path) -> None:
    """``antmaze-umaze`` (registered: Minari's ``D4RL/antmaze/umaze-v1``, D4RL's references) from a
    dataset the test writes under that id with dict observations: the flattened order is the
    documented one, the evaluation environment is the metadata's (its kwargs and episode cap),
    and the evaluation records the success rate beside the normalized score."""
    pytest.importorskip("gymnasium_robotics")
    from minari import create_dataset_from_buffers
    from minari.data_collector import EpisodeBuffer

    env = gym.make("AntMaze_UMaze-v4", continuing_task=False, max_episode_steps=40)
    rng = np.random.default_rng(0)
    buffers, first = [], None
    for i, t in enumerate(LENGTHS):
        space = env.observation_space
        obs = {k: rng.normal(size=(t + 1, *space[k].shape)) for k in ("observation", "desired_goal", "achieved_goal")}
        first = first if first is not None else {k: v[0] for k, v in obs.items()}
        buffers.append(EpisodeBuffer(id=i, observations=obs, actions=list(rng.uniform(-1, 1, (t, 8)).astype(np.float32)),
                                     rewards=list(rng.integers(0, 2, t).astype(float)),
                                     terminations=[False] * t, truncations=[False] * (t - 1) + [True], infos={}))
    create_dataset_from_buffers("D4RL/antmaze/umaze-v1", buffers, env=env.spec, algorithm_name="test",
                                author="offbench tests", author_email="tests@example.org",
                                code_permalink="https://example.org/offbench", description="offbench test data")
    p = offbench("fetch", "antmaze-umaze")
    assert p.returncode == 0, p.stderr
    data = cache.load("antmaze-umaze", fetch_missing=False)
    order = ("achieved_goal", "desired_goal", "observation")  # alphabetical, as documented
    np.testing.assert_allclose(data.observations[0], np.concatenate([first[k] for k in order]), rtol=1e-6)
    assert data.observations.shape[1] == 31 and cache.info("antmaze-umaze")["observation_keys"] == ",".join(order)
    spec = cache.run_spec("antmaze-umaze")
    assert spec.env == "AntMaze_UMaze-v4" and spec.max_episode_steps == 40
    assert spec.env_kwargs["continuing_task"] is False and (spec.ref_min_return, spec.ref_max_return) == (0.0, 1.0)
    run = offbench("run", "--algo", "bc", "--env", "antmaze-umaze", "--steps", "4", "--eval-episodes", "2",
                   "--set", "eval_every=0")
    assert run.returncode == 0 and "1 finished" in run.stdout, run.stderr
    metrics = list((minari_root.parent / "results").glob("antmaze-umaze/bc/*/seed-0/metrics.jsonl"))
    evals = [json.loads(line) for line in metrics[0].read_text().splitlines() if '"eval"' in line]
    final = evals[-1]["targets"][0]
    assert "success_rate" in final and final["length_mean"] <= 40
    assert final["score_mean"] == pytest.approx(100.0 * final["return_mean"])  # D4RL: 0 and 1


def test_a_minari_id_whose_environment_is_not_installed_is_one_line(minari_root: Path) -> None:
    import minari

    make("test/cartpole/custom-v0", "CartPole-v1", True)
    meta_path = Path(minari.load_dataset("test/cartpole/custom-v0").storage.data_path) / "metadata.json"
    meta = json.loads(meta_path.read_text())
    for key in ("env_spec", "eval_env_spec"):
        if meta.get(key):
            spec = json.loads(meta[key])
            spec["id"] = "CustomCartPole-v0"
            meta[key] = json.dumps(spec)
    meta_path.write_text(json.dumps(meta))
    line = one_line_error(offbench("fetch", "minari:test/cartpole/custom-v0"), 1)
    assert "'CustomCartPole-v0' is not installed" in line and "offbench register" in line
    assert not cache.dataset_path("minari:test/cartpole/custom-v0").exists()
