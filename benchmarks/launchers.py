"""Per-run overhead of each launcher against the local process pool, on tiny runs.

Each repeat runs the same small sweep (``--runs`` seeds of bc on keytodoor-1k, a few steps each)
into a fresh results tree with one launcher, as a user types it, and times the whole command;
seconds per run is that wall time over the number of runs. The overhead of a launcher is its
median seconds per run minus the local pool's: what starting a Ray runtime and Ray tasks, or
submitit's tasks (its local executor: one process per task, as on a Slurm node), costs per run.
Writes a Markdown table (default ``benchmarks/launchers.md``) with the machine, date and command.

    python benchmarks/launchers.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import write_table

LAUNCHERS = {
    "local": [],
    "ray": ["--launcher", "ray"],
    "slurm (submitit local executor)": ["--launcher", "slurm", "--slurm-cluster", "local"],
}


def sweep(results: Path, args: argparse.Namespace, launcher: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one `offbench run` of the tiny sweep."""
    cmd = [sys.executable, "-m", "offbench", "run", "--algo", "bc", "--env", "keytodoor-1k", "--seeds", str(args.runs),
           "--steps", str(args.steps), "--eval-episodes", "1", "--set", "eval_every=0", "--results", str(results),
           *launcher]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=4, help="runs (seeds) per sweep")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "launchers.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OFFBENCH_HOME": os.environ.get("OFFBENCH_HOME") or str(Path(tmp) / "home")}
        subprocess.run([sys.executable, "-m", "offbench", "fetch", "keytodoor-1k"], check=True, capture_output=True,
                       env=env)
        per_run: dict[str, list[float]] = {name: [] for name in LAUNCHERS}
        for k in range(args.repeats):  # interleaved, so a slow spell of the machine hits every launcher
            for name, flags in LAUNCHERS.items():
                wall = sweep(Path(tmp) / f"{k}-{len(per_run[name])}-{name.split()[0]}", args, flags, env)
                per_run[name].append(wall / args.runs)
                print(f"{name} repeat {k}: {wall:.2f} s", flush=True)
    base = statistics.median(per_run["local"])
    rows = [[name, f"{statistics.median(v):.2f}", f"{min(v):.2f}-{max(v):.2f}", f"{statistics.median(v) - base:+.2f}"]
            for name, v in per_run.items()]
    write_table(args, "launchers.py", "Launcher overhead per run",
                f"One `offbench run` of {args.runs} runs (bc on keytodoor-1k, {args.steps} steps, one evaluation "
                f"episode) per repeat, {args.repeats} repeats per launcher, each into a fresh results tree; seconds "
                "per run = the command's wall time / runs. Overhead: median seconds per run minus the local pool's.",
                ["launcher", "s per run (median)", "range", "overhead vs local"], rows)


if __name__ == "__main__":
    main()
