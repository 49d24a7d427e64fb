"""OGBench single-task datasets: a file in OGBench's ``.npz`` layout, served on loopback, loaded and
relabelled by the ogbench package, trained on and scored by the evaluation environment's success."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from offbench.data import cache
from tests.test_cli import offbench, one_line_error
from tests.upstream import serve

pytest.importorskip("ogbench")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ID = "pointmaze-medium-navigate-singletask-task1-v0"
TRAJECTORIES, STEPS = 12, 40  # each trajectory: STEPS transitions, STEPS + 1 observations
REACHING = (1, 4, 7)  # trajectories whose last 5 states lie at the task's goal


def write_ogbench_npz(path: Path) -> np.ndarray:
    """``pointmaze-medium-navigate-v0.npz`` as OGBench stores it: per trajectory, its observations
    with the final one included, ``terminals`` 1 on that final row, ``qpos``/``qvel`` beside them.
    Returns the goal of task 1."""
    import ogbench  # noqa: F401  (registers the environments)

    env = gym.make("pointmaze-medium-singletask-task1-v0")
    env.reset(seed=0)
    goal = np.asarray(env.unwrapped.cur_goal_xy, np.float64)
    env.close()
    rng = np.random.default_rng(0)
    qpos, terminals = [], []
    for t in range(TRAJECTORIES):
        xy = np.cumsum(rng.normal(0, 0.2, (STEPS + 1, 2)), axis=0) + np.array([4.0, 4.0])  # far from the goal
        if t in REACHING:
            xy[-5:] = goal
        qpos.append(xy)
        terminals.append(np.eye(1, STEPS + 1, STEPS)[0])
    qpos_all = np.concatenate(qpos)
    n = len(qpos_all)
    np.savez(path, observations=qpos_all.astype(np.float32), actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
             terminals=np.concatenate(terminals).astype(np.float32), qpos=qpos_all,
             qvel=rng.normal(0, 0.1, (n, 2)))
    return goal


def test_an_ogbench_id_fetches_runs_and_reports_success_rates(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    write_ogbench_npz(bucket / "pointmaze-medium-navigate-v0.npz")
    name = f"ogbench:{ID}"
    with serve(bucket) as server:
        p = offbench("fetch", name, "--mirror", server.url)
        assert p.returncode == 0 and "cached" in p.stdout, p.stderr
        assert offbench("fetch", "pointmaze-medium-navigate", "--mirror", server.url).returncode == 0
    data = cache.load(name, fetch_missing=False)
    # OGBench's trajectories are the episodes; next observations from them (the final one dropped)
    assert data.num_episodes == TRAJECTORIES and len(data) == TRAJECTORIES * STEPS
    np.testing.assert_array_equal(data.episode_lengths, [STEPS] * TRAJECTORIES)
    # ogbench's relabelling: 0 at the goal, -1 elsewhere; the solved steps are terminal
    solved = np.zeros((TRAJECTORIES, STEPS), bool)
    solved[list(REACHING), -4:] = True  # the last 5 states at the goal: 4 of them are transitions' states
    np.testing.assert_array_equal(data.terminals, solved.reshape(-1))
    np.testing.assert_array_equal(data.rewards, np.where(solved.reshape(-1), 0.0, -1.0))
    last = (~solved[:, -1])[:, None] & (np.arange(STEPS) == STEPS - 1)  # trajectories' ends, unless solved there
    np.testing.assert_array_equal(data.timeouts, last.reshape(-1))
    info = cache.info(name)
    assert info["source"] == "ogbench" and info["origin"].startswith(server.url)
    spec = cache.run_spec(name)
    assert spec.env == "pointmaze-medium-singletask-task1-v0" and spec.max_episode_steps == 1000
    assert spec.score == "success rate (%)"
    run = offbench("run", "--algo", "bc,iql", "--env", name, "--steps", "4", "--eval-episodes", "2",
                   "--set", "eval_every=0")
    assert run.returncode == 0 and "2 finished" in run.stdout, run.stderr
    metrics = sorted((tmp_path / "results").glob("*/*/*/seed-0/metrics.jsonl"))
    assert len(metrics) == 2
    for path in metrics:
        final = [json.loads(line) for line in path.read_text().splitlines() if '"eval"' in line][-1]["targets"][0]
        assert final["score_mean"] == final["success_rate"] and final["success_rate"] in (0.0, 50.0, 100.0)
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*/*/*/seed-0/summary.json")]
    assert all(s["score_last"] == s["success_last"] for s in summaries) and len(summaries) == 2
    report = json.loads(offbench("report", "--json").stdout)
    assert {r["dataset"] for r in report["rows"]} == {name}
    reported = {r["algo"]: r for r in report["rows"]}
    for s in summaries:  # the success rate is the score (one seed: the mean), not re-normalized from the return
        assert reported[s["algo"]]["mean"] == pytest.approx(s["success_last"])


def test_ogbench_bad_names_and_files_are_one_line(tmp_path: Path) -> None:
    line = one_line_error(offbench("fetch", "ogbench:pointmaze-medium-navigat-singletask-task1-v0"), 2)
    assert f"did you mean ogbench:{ID}" in line
    line = one_line_error(offbench("fetch", "ogbench:pointmaze-medium-navigate-v0"), 2)
    assert "single-task" in line
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "pointmaze-medium-navigate-v0.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with serve(bucket) as server:
        line = one_line_error(offbench("fetch", f"ogbench:{ID}", "--mirror", server.url), 1)
    assert "not an OGBench dataset file" in line and "not cached" in line
    assert not cache.dataset_path(f"ogbench:{ID}").exists()
