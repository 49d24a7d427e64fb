"""Measure the uniform-random policy's success rate on Key-to-Door (calibration of the defaults).

    python benchmarks/keytodoor_random.py [--episodes 1000000] [--seed 1] [--out benchmarks/keytodoor_random.md]

Prints the success rate with a 95% normal-approximation interval and writes it, with the machine,
date and command, to ``--out``. The paper reports 3.1%.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

from machine import describe
from offbench.envs.keytodoor import KeyToDoorEnv


def success_rate(episodes: int, seed: int) -> float:
    env = KeyToDoorEnv()
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    wins = 0
    for _ in range(episodes):
        env.reset()
        total, done = 0.0, False
        while not done:
            _, r, terminated, truncated, _ = env.step(rng.integers(4))
            total, done = total + r, terminated or truncated
        wins += total > 0
    return wins / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("keytodoor_random.md"))
    args = parser.parse_args()
    t = time.perf_counter()
    p = success_rate(args.episodes, args.seed)
    half = 1.96 * np.sqrt(p * (1 - p) / args.episodes)
    line = (f"uniform-random success: {100 * p:.2f}% ± {100 * half:.2f}% over {args.episodes:,} episodes "
            f"({time.perf_counter() - t:.0f} s); paper: 3.1%")
    print(line)
    args.out.write_text(
        "# Key-to-Door: the uniform-random policy's success rate\n\n"
        f"{line}\n\n"
        f"- command: `python benchmarks/keytodoor_random.py {' '.join(sys.argv[1:])}`\n"
        f"- machine: {describe()}; date: {datetime.date.today().isoformat()}\n"
        "- environment: `offbench/KeyToDoor-v0` with its defaults (`offbench/envs/keytodoor.py`)\n")


if __name__ == "__main__":
    main()
