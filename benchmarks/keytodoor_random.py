"""Measure the uniform-random policy's success rate on Key-to-Door (calibration of the defaults).

    python benchmarks/keytodoor_random.py [--episodes 200000] [--seed 1]

Prints the success rate with a 95% normal-approximation interval. The paper reports 3.1%.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from offbench.envs.keytodoor import KeyToDoorEnv


def success_rate(episodes: int, seed: int) -> float:
    env = KeyToDoorEnv()
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    wins = 0
    for _ in range(episodes):
        env.reset()
        while True:
            _, r, terminated, truncated, _ = env.step(rng.integers(4))
            if terminated or truncated:
                wins += r > 0
                break
    return wins / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    t = time.perf_counter()
    p = success_rate(args.episodes, args.seed)
    half = 1.96 * np.sqrt(p * (1 - p) / args.episodes)
    print(f"uniform-random success: {100 * p:.2f}% ± {100 * half:.2f}% over {args.episodes} episodes "
          f"({time.perf_counter() - t:.0f} s); paper: 3.1%")


if __name__ == "__main__":
    main()
