"""Stopping `offbench run` with worker processes: Ctrl-C, kill -9, and two commands on one run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from offbench.results import RunDir
from offbench.runlock import run_lock
from tests.campaigns import group_gone
from tests.test_cli import offbench

ARGS = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--seeds", "2", "--workers", "2", "--steps", "200000",
        "--eval-episodes", "4", "--set", "eval_every=200"]


def start(results: Path) -> subprocess.Popen:
    """Start a long run in its own session (signals as from a terminal reach the whole group),
    with SIGINT handled as in a terminal's foreground job: a shell running the tests in the
    background (``cmd &``) hands its children SIGINT ignored, and Python then never raises
    KeyboardInterrupt."""
    return subprocess.Popen([sys.executable, "-m", "offbench", *ARGS, "--results", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.fixture
def reaper() -> Iterator[list[int]]:
    """Process groups to kill after the test, whatever its outcome (a failed test leaves no workers)."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def wait_for_checkpoints(results: Path, n: int) -> None:
    deadline = time.monotonic() + 120
    while len(list(results.glob("*/*/*/seed-*/checkpoint.pt"))) < n:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.1)


def test_ctrl_c_stops_every_worker_and_the_run_resumes(isolated: Path, reaper: list[int]) -> None:
    assert offbench("fetch", "keytodoor-1k").returncode == 0
    results = isolated / "r"
    proc = start(results)
    reaper.append(proc.pid)
    wait_for_checkpoints(results, 2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["interrupted: run the same command again to resume unfinished runs"]
    assert group_gone(proc.pid)
    assert not list(results.glob("*/*/*/seed-*/summary.json"))
    steps = [RunDir(d).checkpoint for d in results.glob("*/*/*/seed-*")]
    assert len(steps) == 2 and all(p.is_file() for p in steps)
    finish = offbench(*[a if a != "200000" else "400" for a in ARGS], "--results", str(results))
    # a different --steps is a different config: the interrupted runs are left as they were
    assert finish.returncode == 0 and all(p.is_file() for p in steps)


def test_workers_do_not_outlive_a_killed_command(isolated: Path, reaper: list[int]) -> None:
    assert offbench("fetch", "keytodoor-1k").returncode == 0
    results = isolated / "r"
    proc = start(results)
    reaper.append(proc.pid)
    wait_for_checkpoints(results, 1)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.communicate(timeout=30)
    assert group_gone(proc.pid), "worker processes kept running after their command was killed"


def test_a_run_in_progress_elsewhere_is_not_touched(isolated: Path) -> None:
    results = isolated / "r"
    args = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "20", "--workers", "1", "--no-wait",
            "--results", str(results)]
    first = offbench(*args, "--seeds", "1")
    assert first.returncode == 0
    seed1 = next(results.glob("*/*/*")) / "seed-1"
    seed1.mkdir()
    with run_lock(seed1 / ".lock", "test"):
        p = offbench(*args, "--seeds", "2")
    assert p.returncode == 1 and "being run by another offbench process" in p.stderr
    assert not (seed1 / "summary.json").exists() and not (seed1 / "metrics.jsonl").exists()
