"""Atari training throughput: gradient steps per second of the Atari presets (DT, BC, CQL).

    python benchmarks/atari_speed.py [--steps 20] [--device cpu|cuda|both]

Builds an in-memory dataset shaped like the 1% DQN-replay subsets (84x84 uint8 single frames with
stack indices; 50 episodes of 1,000 steps, random content: speed does not depend on it) and times
``update`` on batches from the real samplers with the published presets: DT (K 30, 6 layers,
8 heads, embed 128, batch 128), BC (Nature-DQN encoder, batch 128), CQL (DQN backbone, batch 32).
Sampling is included, as in training. Writes benchmarks/results/atari_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from offbench.algos import get_algorithm
from offbench.data.dataset import Dataset
from offbench.data.sources.dqn_replay import stack_indices
from offbench.data.spec import get_spec


def dataset(episodes: int = 50, length: int = 1000) -> Dataset:
    rng = np.random.default_rng(0)
    n = episodes * length
    starts = np.arange(0, n, length, dtype=np.int64)
    terminals = np.zeros(n, bool)
    terminals[starts[1:] - 1] = True
    terminals[-1] = True
    return Dataset(observations=rng.integers(0, 255, (n, 84, 84), dtype=np.uint8),
                   actions=rng.integers(0, 4, n).astype(np.int64), rewards=(rng.random(n) < 0.01).astype(np.float32),
                   terminals=terminals, timeouts=np.zeros(n, bool), episode_starts=starts,
                   attrs={"num_actions": 4}, stack_indices=stack_indices(starts, n, 4))


def measure(algo: str, data: Dataset, device: torch.device, steps: int) -> float:
    spec = get_spec("breakout-1pct")
    cls = get_algorithm(algo)
    model = cls(cls.Config.for_dataset(spec), data, spec, device)
    sampler = model.make_sampler(data, np.random.default_rng(0))
    for _ in range(2):
        model.update(sampler.sample())
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        metrics = model.update(sampler.sample())
    float(next(iter(metrics.values())))  # wait for the device
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="both")
    args = ap.parse_args()
    devices = [torch.device("cpu")] if args.device in ("cpu", "both") else []
    if args.device in ("cuda", "both") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    data = dataset()
    out = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
           "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "steps_per_second": {}}
    for dev in devices:
        for algo in ("dt", "bc", "cql"):
            sps = measure(algo, data, dev, args.steps)
            out["steps_per_second"][f"{algo}/{dev.type}"] = round(sps, 2)
            print(f"{algo} on {dev.type}: {sps:.2f} gradient steps/s", flush=True)
    path = Path(__file__).resolve().parent / "results" / "atari_speed.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
