"""Thread counts follow the cores actually free, and what a run reports while it runs and resumes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from offbench.cores import busy_cores, given_cores, threads_per_job
from offbench.errors import UsageError
from offbench.launch import plan_runs, run_plans
from offbench.checkpoints import load_checkpoint
from offbench.train import execute
from tests.test_cli import offbench


@pytest.fixture
def busy_core() -> Iterator[None]:
    """Another process keeping one core busy for the length of the test."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)  # past interpreter start-up
    yield
    proc.kill()
    proc.wait()


def test_a_core_kept_busy_by_another_process_is_not_free(busy_core: None) -> None:
    # the spinning process holds a whole core (more if the machine is busier): the measurement,
    # over 0.25 s of /proc/stat jiffies (1/100 s each), is ~1 within a few jiffies
    assert busy_cores() >= 0.7


SHARER = """
import sys, time, torch
from offbench import cores
cores.REBALANCE_SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 0.3
with cores.CoreShare() as share:
    x, end, shown = torch.randn(256, 256), time.time() + float(sys.argv[1]), None
    while time.time() < end:
        x = torch.tanh(x @ x * 1e-3)
        share.update()
        if torch.get_num_threads() != shown:
            shown = torch.get_num_threads()
            print(time.time(), shown, flush=True)
"""


def threads_at(out: str, when: float) -> int:
    """The thread count a sharer had at time ``when`` (from its printed changes)."""
    changes = [(float(t), int(n)) for t, n in (line.split() for line in out.splitlines())]
    return [n for t, n in changes if t <= when][-1]


def test_two_offbench_processes_share_the_free_cores() -> None:
    # the first starts alone and may take every free core; once the second has run for a few
    # rebalancing periods, the two together hold no more threads than there are cores
    first = subprocess.Popen([sys.executable, "-c", SHARER, "6"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    second = subprocess.Popen([sys.executable, "-c", SHARER, "6"], stdout=subprocess.PIPE, text=True)
    out1, out2 = first.communicate(timeout=60)[0], second.communicate(timeout=60)[0]
    both = time.time() - 2.5  # the first ended ~1.5 s before the second; 1 s before that, both ran
    assert threads_at(out1, both) + threads_at(out2, both) <= max(2, len(given_cores())), (out1, out2)


def test_a_process_that_starts_is_given_its_share_at_once() -> None:
    # no periodic measurement within the test (60 s): the first, alone, takes every free core;
    # the second's registration alone makes the first give half back, on its next step
    first = subprocess.Popen([sys.executable, "-c", SHARER, "8", "60"], stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    first_line = first.stdout.readline()  # the first has entered its share
    second = subprocess.Popen([sys.executable, "-c", SHARER, "4", "60"], stdout=subprocess.PIPE, text=True)
    out2 = second.communicate(timeout=60)[0]
    out1 = first_line + first.communicate(timeout=60)[0]
    # 0.5 s after the second took its share, the first has taken many steps (each ~1 ms)
    settled = float(out2.split()[0]) + 0.5
    assert threads_at(out1, settled) + threads_at(out2, settled) <= max(2, len(given_cores())), (out1, out2)


def test_threads_are_shared_between_jobs_or_given() -> None:
    assert threads_per_job(2, free=5) == 2
    assert threads_per_job(4, free=2) == 1
    assert threads_per_job(4, threads=3, free=2) == 3
    with pytest.raises(UsageError, match="--threads must be >= 1"):
        threads_per_job(1, threads=0)


def test_a_single_job_uses_the_free_cores_and_restores_torch_threads(isolated: Path, busy_core: None) -> None:
    before = torch.get_num_threads()
    plans = plan_runs(["keytodoor-1k"], ["bc"], 1, isolated / "r", ["eval_every=0"], steps=5, eval_episodes=1)
    out = run_plans(plans, device="cpu", workers=1)
    assert not out.failed
    # one core is held by the spinner: a single job may take the others, never all of them
    assert out.finished[0]["threads"] <= max(1, len(given_cores()) - 1)
    assert torch.get_num_threads() == before
    plans = plan_runs(["keytodoor-1k"], ["bc"], 1, isolated / "r2", ["eval_every=0"], steps=5, eval_episodes=1)
    assert run_plans(plans, device="cpu", workers=1, threads=1).finished[0]["threads"] == 1


def test_train_seconds_of_a_resumed_run_count_every_part(isolated: Path) -> None:
    plan = plan_runs(["keytodoor-1k"], ["bc"], 1, isolated / "r", ["eval_every=20"], steps=40, eval_episodes=1)[0]

    def stop_after_first_checkpoint(step: int, total: int, score: float | None) -> None:
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(plan, device="cpu", progress=stop_after_first_checkpoint)
    first_part = load_checkpoint(plan.dir.checkpoint)["train_seconds"]
    assert first_part > 0
    summary = execute(plan, device="cpu")
    assert summary["train_seconds"] > first_part


def test_run_says_when_it_starts_evaluates_resumes_and_restarts(isolated: Path) -> None:
    results = isolated / "r"
    args = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "40", "--eval-episodes", "1",
            "--set", "eval_every=20", "--workers", "1", "--results", str(results)]
    first = offbench(*args)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert "start: keytodoor-1k/bc/seed-0 (40 steps)" in lines
    assert any(line.startswith("eval: keytodoor-1k/bc/seed-0 step 20/40 score ") for line in lines)
    assert any(line.startswith("done: keytodoor-1k/bc/seed-0 score ") for line in lines)
    seed = next(results.glob("*/*/*/seed-0"))
    (seed / "summary.json").unlink()  # as if killed after its last checkpoint
    again = offbench(*args)
    assert "resume: keytodoor-1k/bc/seed-0 resuming from step 40/40" in again.stdout.splitlines()
    (seed / "summary.json").unlink()
    (seed / "checkpoint.pt").unlink()  # as if killed before its first checkpoint
    third = offbench(*args)
    assert ("restart: keytodoor-1k/bc/seed-0 from step 0 (it stopped before its first checkpoint)"
            in third.stdout.splitlines())


def test_time_left_follows_the_speed_of_the_steps_done(isolated: Path) -> None:
    from offbench.launch import TimeLeft

    plans = plan_runs(["keytodoor-1k"], ["bc"], 2, isolated / "r", steps=1000)
    before = time.monotonic()
    left = TimeLeft(plans, warmup=0.0)
    after = time.monotonic()
    assert left.seconds() is None  # nothing done yet
    left.update("start", plans[0].label, 0, 1000)
    left.update("resume", plans[1].label, 400, 1000)
    time.sleep(0.2)
    left.update("progress", plans[0].label, 100, 1000)
    left.update("progress", plans[1].label, 500, 1000)
    # 200 steps done, 1400 left: 7 times the time elapsed since the estimate began
    start_low, now_low = after, time.monotonic()
    seconds = left.seconds()
    assert 7 * (now_low - start_low) <= seconds <= 7 * (time.monotonic() - before)
