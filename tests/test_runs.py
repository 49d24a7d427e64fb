"""Runs end to end through the CLI: records, report numbers, skipping, resuming after a kill."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from offbench.results import read_metrics
from tests.test_cli import offbench

TINY = ["--steps", "30", "--eval-episodes", "8", "--set", "eval_every=15"]


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/*/*/seed-*/summary.json"))]


def test_run_all_algorithms_then_report_matches_the_records(isolated: Path) -> None:
    root = isolated / "results"
    p = offbench("run", "--algo", "dt,pbc,bc,random", "--env", "keytodoor-1k", "--seeds", "2", "--workers", "2",
                 "--set", "dt.embed_dim=16", *TINY)
    assert p.returncode == 0, p.stderr
    assert "8 finished" in p.stdout
    runs = summaries(root)
    assert len(runs) == 8 and {r["algo"] for r in runs} == {"dt", "pbc", "bc", "random"}
    for run_dir in root.glob("keytodoor-1k/*/*/seed-*"):
        config = json.loads((run_dir / "config.json").read_text())
        assert config["config"]["eval_episodes"] == 8
        records = read_metrics(run_dir / "metrics.jsonl")
        evals = [r for r in records if r["kind"] == "eval"]
        if config["algo"] == "random":
            assert [e["step"] for e in evals] == [0]
        else:
            assert [e["step"] for e in evals] == [15, 30] and config["config"]["steps"] == 30
            assert any(r["kind"] == "train" and np.isfinite(r["loss"]) for r in records)
        assert (run_dir / "summary.json").is_file()
    dt_config = json.loads(next(root.glob("keytodoor-1k/dt/*/seed-0/config.json")).read_text())
    assert dt_config["config"]["embed_dim"] == 16 and dt_config["config"]["context"] == 40  # the whole episode

    # The report's numbers are the mean and sample std of the summaries' final scores.
    csv = offbench("report", "--format", "csv").stdout.strip().splitlines()
    assert csv[0] == "dataset,algo,mean,std,ci95,seeds,steps,domain"
    for line in csv[1:]:
        dataset, algo, mean, std, _, seeds, _, _ = line.split(",")
        scores = [r["score_last"] for r in runs if r["algo"] == algo]
        assert dataset == "keytodoor-1k" and int(seeds) == 2
        assert abs(float(mean) - np.mean(scores)) < 1e-3 and abs(float(std) - np.std(scores, ddof=1)) < 1e-3
    md = offbench("report", "--format", "md").stdout
    assert md.startswith("| dataset |") and "keytodoor-1k" in md and "final evaluation (last)" in md
    assert "success rate (%)" in md
    table = offbench("report").stdout
    assert "keytodoor-1k" in table and "dt" in table

    # Running the same command again skips every finished run and rewrites nothing.
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    again = offbench("run", "--algo", "dt,pbc,bc,random", "--env", "keytodoor-1k", "--seeds", "2", "--workers", "2",
                     "--set", "dt.embed_dim=16", *TINY)
    assert again.returncode == 0 and "0 finished, 8 already done" in again.stdout
    assert before == {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_a_killed_run_resumes_and_ends_as_if_uninterrupted(isolated: Path) -> None:
    args = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "1500", "--eval-episodes", "4",
            "--set", "eval_every=100", "--workers", "1"]
    assert offbench("fetch", "keytodoor-1k").returncode == 0
    killed = isolated / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "offbench", *args, "--results", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(killed.glob("*/*/*/seed-0/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = next(killed.glob("*/*/*/seed-0"))
    assert not (run_dir / "summary.json").exists(), "the run finished before it could be killed"
    assert offbench(*args, "--results", str(killed)).returncode == 0  # resumes
    straight = isolated / "straight"
    assert offbench(*args, "--results", str(straight)).returncode == 0
    a = read_metrics(run_dir / "metrics.jsonl")
    b = read_metrics(next(straight.glob("*/*/*/seed-0")) / "metrics.jsonl")
    assert [r["step"] for r in a] == [r["step"] for r in b]  # no step lost or logged twice
    assert a == b  # identical losses and evaluations
    sa, sb = summaries(killed)[0], summaries(straight)[0]
    assert sa["score_last"] == sb["score_last"] and sa["score_best"] == sb["score_best"]


def test_run_plans_raises_when_runs_fail_and_keeps_the_others(isolated: Path) -> None:
    from offbench.launch import RunsFailed, plan_runs, run_plans

    plans = plan_runs(["keytodoor-1k"], ["iql", "bc"], 1, isolated / "r", ["eval_every=0"], steps=4, eval_episodes=1)
    with pytest.raises(RunsFailed, match=r"1 of 2 runs failed \(first: keytodoor-1k/iql/seed-0: .*continuous") as err:
        run_plans(plans, device="cpu", workers=1)
    assert [s["algo"] for s in err.value.outcome.finished] == ["bc"]
    assert run_plans(plans, device="cpu", workers=1, check=False).failed[0][0].algo == "iql"


def test_the_device_is_resolved_once_and_reference_returns_read_once(isolated: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_plans`` resolves the device name into a ``torch.device`` for the launcher, and the
    plans carry their dataset's spec with its reference returns: neither is looked up again at
    every evaluation."""
    import torch

    from offbench.data import cache
    from offbench.launch import LocalLauncher, plan_runs, run_plans

    plans = plan_runs(["keytodoor-1k"], ["bc"], 2, isolated / "r", ["eval_every=2"], steps=8, eval_episodes=2)
    assert all(p.spec.name == "keytodoor-1k" and p.spec.ref_max_return is not None for p in plans)
    lookups: list[str] = []
    real = cache.run_spec
    monkeypatch.setattr(cache, "run_spec", lambda name: lookups.append(name) or real(name))
    seen: list[object] = []

    class Recording(LocalLauncher):
        def run(self, groups, device, sink):  # noqa: ANN001
            seen.append(device)
            super().run(groups, device, sink)

    out = run_plans(plans, device="auto", workers=1, launcher=Recording(1))
    assert len(out.finished) == 2 and [e["step"] for e in read_metrics(plans[0].dir.metrics)
                                       if e["kind"] == "eval"] == [2, 4, 6, 8]
    assert seen == [torch.device("cpu")] and isinstance(seen[0], torch.device)
    assert lookups == []  # keytodoor-1k's references are in the registry: the cache file is never read for them
