"""`offbench status`: a sweep's state from its run records alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.test_cli import offbench, one_line_error


def status(results: Path) -> dict:
    p = offbench("status", "--json", "--results", str(results))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_status_counts_a_sweep_in_progress_by_state(isolated: Path) -> None:
    """cql trains one seed per model on a CPU, so with one worker its three seeds run in turn: while
    seed 0 trains, seeds 1 and 2 wait. bc has finished beside it, and iql failed (continuous
    actions only)."""
    results = isolated / "r"
    assert offbench("fetch", "keytodoor-1k").returncode == 0
    done = offbench("run", "--algo", "bc,iql", "--env", "keytodoor-1k", "--steps", "4", "--eval-episodes", "1",
                    "--results", str(results))
    assert done.returncode == 1 and "needs continuous actions" in done.stderr
    proc = subprocess.Popen([sys.executable, "-m", "offbench", "run", "--algo", "cql", "--env", "keytodoor-1k",
                             "--seeds", "3", "--steps", "100000", "--eval-episodes", "1", "--workers", "1",
                             "--set", "eval_every=20", "--results", str(results)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = status(results)
            cql = next((g for g in now["groups"] if g["algo"] == "cql"), None)
            running = [r for r in now["runs"] if r["state"] == "running"]
            if cql and cql["running"] == 1 and running and running[0]["score"] is not None:
                break
            time.sleep(0.2)
        groups = {g["algo"]: g for g in now["groups"]}
        assert {k: groups["cql"][k] for k in ("finished", "running", "failed", "waiting")} == \
            {"finished": 0, "running": 1, "failed": 0, "waiting": 2}
        assert groups["bc"]["finished"] == 1 and groups["iql"]["failed"] == 1
        assert "needs continuous actions" in groups["iql"]["errors"][0]
        (run,) = running
        assert run["seed"] == 0 and run["total"] == 100000 and 0 < run["step"] < 100000
        assert groups["cql"]["running_now"][0].startswith("seed 0: ")
        table = offbench("status", "--results", str(results))
        assert table.returncode == 0 and "cql" in table.stdout and "keytodoor-1k" in table.stdout
    finally:
        proc.kill()
        proc.wait()
    after = {g["algo"]: g for g in status(results)["groups"]}
    assert after["cql"]["running"] == 0 and after["cql"]["waiting"] == 3  # killed: all to be resumed


def test_status_without_results_is_one_line(isolated: Path) -> None:
    assert "no results directory" in one_line_error(offbench("status", "--results", str(isolated / "none")), 2)
