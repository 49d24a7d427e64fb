"""Training speed per job when the CPU is shared: torch's default thread count vs offbench's share.

    python benchmarks/threads.py [--algo bc] [--env keytodoor-10k] [--steps 3000] [--out benchmarks/threads.md]

Every job is a separate ``offbench run`` command (one seed, one evaluation episode at the end), as
a user would start it; its speed is steps / ``train_seconds`` from its ``summary.json``. Scenarios:

- one job alone;
- one job while another process keeps one core busy (a Python busy loop);
- N jobs started together as N commands (N = the cores given to this process);
- N seeds in one command (``--workers N``).

"before" forces, with ``--threads``, what offbench 0.1.0 used: torch's default count (one thread
per core) for a command with one worker, ``cores // workers`` in each of several workers;
"offbench" lets offbench choose (its share of the free cores, re-measured while running). Writes a Markdown table
with the machine, date and command to ``--out`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from machine import write_table
from offbench.cores import given_cores


def start_job(results: Path, args: argparse.Namespace, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "offbench", "run", "--algo", args.algo, "--env", args.env,
           "--steps", str(args.steps), "--eval-episodes", "1", "--set", f"eval_every={args.steps}",
           "--device", "cpu", "--results", str(results), *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def speeds(results: Path) -> list[float]:
    """steps/s of every finished run under ``results``."""
    out = []
    for path in sorted(results.glob("*/*/*/seed-*/summary.json")):
        s = json.loads(path.read_text())
        out.append(s["steps"] / s["train_seconds"])
    return out


def scenario(root: Path, name: str, jobs: int, extra: list[str], args: argparse.Namespace,
             seeds: int = 1, busy: bool = False) -> list[float]:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        if spinner:
            time.sleep(0.5)
        procs = [start_job(root / f"{name}-{j}", args, [*extra, "--seeds", str(seeds)]) for j in range(jobs)]
        for p in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"{name}: offbench run failed: {err.strip().splitlines()[-1:]}")
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()
    return [v for j in range(jobs) for v in speeds(root / f"{name}-{j}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="bc")
    parser.add_argument("--env", default="keytodoor-10k")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "threads.md")
    args = parser.parse_args()
    cores = len(given_cores())
    default = torch.get_num_threads()  # what torch picks in a fresh process (OMP_NUM_THREADS unset below)
    if "OMP_NUM_THREADS" in os.environ:
        default = os.cpu_count() or 1
    subprocess.run([sys.executable, "-m", "offbench", "fetch", args.env], check=True, capture_output=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for label, jobs, seeds, busy in (("one job alone", 1, 1, False),
                                         ("one job, another process busy on one core", 1, 1, True),
                                         (f"{cores} jobs started together ({cores} commands)", cores, 1, False),
                                         (f"{cores} seeds in one command (--workers {cores})", 1, cores, False)):
            row = [label]
            # before: a command with one worker trained in-process with torch's default threads; workers
            # of one command got cores // workers each
            before = max(1, cores // seeds) if seeds > 1 else default
            for how, extra in (("before", ["--threads", str(before)]), ("offbench", [])):
                workers = ["--workers", str(cores)] if seeds > 1 else ["--workers", "1"]
                name = f"{len(rows)}-{how.replace(' ', '')}"
                t0 = time.perf_counter()
                values = scenario(root, name, jobs, [*extra, *workers], args, seeds, busy)
                wall = time.perf_counter() - t0
                row.append(f"{sum(values) / len(values):.0f} ({min(values):.0f}-{max(values):.0f}); wall {wall:.0f} s")
                print(label, how, [round(v) for v in values], f"wall {wall:.1f} s", flush=True)
            rows.append(row)
    write_table(args, "threads.py", "Training speed when the CPU is shared",
                f"{args.algo} on {args.env}, {args.steps} steps per run; steps/s per job: mean (min-max over jobs), "
                f"and the scenario's wall time. \"before\": what offbench 0.1.0 used (`--threads {default}`, torch's "
                "default, in a command with one worker; cores / workers in each of several workers); \"offbench\": no "
                "`--threads` (each process's share of the free cores, re-measured every few seconds and re-split at "
                "once when an offbench process starts or ends).",
                ["scenario", "before", "offbench"], rows, f"; {cores} cores given to the process")


if __name__ == "__main__":
    main()
