"""Train one d3rlpy algorithm for one seed on a D4RL-layout .npz and evaluate it: the d3rlpy side
of ``benchmarks/parity.py``.

Run with the python of the separate virtual environment that has d3rlpy (see
``d3rlpy_throughput.py``; ``parity.py`` starts it), never with offbench's:

    python benchmarks/d3rlpy_parity_worker.py --job JOB.json

JOB.json (written by ``parity.py``):

    {"data": "DATA.npz", "algo": "iql", "seed": 0, "steps": 10000, "device": "cpu", "threads": 1,
     "config": {offbench's resolved config of the run, AlgoConfig.to_dict()},
     "max_timestep": 1001, "target_return": 3600.0 (DT) or null,
     "env": {"id": "Hopper-v4", "max_episode_steps": 1000, "kwargs": {}},
     "episode_seeds": [s_0, ..., s_{E-1}]}

The algorithm is d3rlpy's, configured like offbench's config by ``d3rlpy_configs.make_config``.
``d3rlpy.seed(seed)`` seeds Python's, numpy's and torch's generators before the model is built;
then ``steps`` gradient steps run as d3rlpy's ``fit`` runs them (d3rlpy's own sampler, then
``algo.update``) without its logger. Evaluation: one greedy episode per entry of
``episode_seeds`` in a fresh ``gymnasium.make(id, max_episode_steps=...)`` (actions rescaled to
[-1, 1] where the environment's bounds differ, as offbench does), reset with that seed. Transition
algorithms act through ``algo.predict`` (which applies d3rlpy's observation scaler); DT through
``algo.as_stateful_wrapper(target_return)`` as d3rlpy's own ``evaluate_transformer_with_environment``
does it.

Prints one JSON line on stdout: the episodes' returns and lengths, timings, versions, the d3rlpy
config used and the offbench settings it could not take. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch

with contextlib.redirect_stdout(sys.stderr):  # keep import-time notices (gym's) off stdout
    import d3rlpy
    import gymnasium as gym
    from d3rlpy.algos.utility import (
        build_scalers_with_trajectory_slicer,
        build_scalers_with_transition_picker,
    )
from d3rlpy_configs import TRAJECTORY_ALGOS, load_dataset, log, make_config


def make_env(env: dict[str, Any]) -> gym.Env:
    """The evaluation environment as offbench makes it (``offbench.envs.factory.make_gym_env``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        e = gym.make(env["id"], max_episode_steps=int(env["max_episode_steps"]), **env.get("kwargs", {}))
    space = e.action_space
    if isinstance(space, gym.spaces.Box) and not (np.all(space.low == -1) and np.all(space.high == 1)):
        e = gym.wrappers.RescaleAction(e, -1.0, 1.0)
    return e


def train(job: dict[str, Any]) -> tuple[Any, dict[str, Any], list[str], float]:
    """Build, seed and train the algorithm; return it, its description, what it could not take, seconds."""
    name, steps = job["algo"], int(job["steps"])
    dataset, info = load_dataset(job["data"])
    d3rlpy.seed(int(job["seed"]))
    config, described, unmatched = make_config(name, job["config"], total_steps=steps,
                                               max_timestep=int(job["max_timestep"]))
    algo = config.create(device=job.get("device", "cpu"))
    if name in TRAJECTORY_ALGOS:
        build_scalers_with_trajectory_slicer(algo, dataset)
        sample = lambda: dataset.sample_trajectory_batch(config.batch_size, length=config.context_size)  # noqa: E731
    else:
        build_scalers_with_transition_picker(algo, dataset)
        sample = lambda: dataset.sample_transition_batch(config.batch_size)  # noqa: E731
    algo.build_with_dataset(dataset)
    log(f"{name} seed {job['seed']}: {steps} steps on {info['transitions']} transitions ({info['episodes']} episodes)")
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        algo.update(sample())
        if step % max(1, steps // 10) == 0:
            log(f"{name} seed {job['seed']}: step {step}/{steps}")
    return algo, described, unmatched, time.perf_counter() - t0


def evaluate(algo: Any, job: dict[str, Any]) -> tuple[list[float], list[int]]:
    """One greedy episode per seed in ``job["episode_seeds"]``; their returns and lengths."""
    env = make_env(job["env"])
    wrapper = algo.as_stateful_wrapper(target_return=float(job["target_return"])) \
        if job["algo"] in TRAJECTORY_ALGOS else None
    returns, lengths = [], []
    try:
        for seed in job["episode_seeds"]:
            obs, _ = env.reset(seed=int(seed))
            reward, total, length, done = 0.0, 0.0, 0, False
            if wrapper is not None:
                wrapper.reset()
            while not done:
                x = np.asarray(obs, dtype=np.float32)
                action = wrapper.predict(x, reward) if wrapper is not None else algo.predict(x[None])[0]
                obs, r, terminated, truncated, _ = env.step(action)
                reward = float(r)
                total += reward
                length += 1
                done = bool(terminated or truncated)
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
    return returns, lengths


def version_of(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except ImportError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, help="JSON file describing the run (see the module docstring)")
    args = parser.parse_args(argv)
    with open(args.job) as f:
        job = json.load(f)
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    algo, described, unmatched, train_s = train(job)
    t0 = time.perf_counter()
    returns, lengths = evaluate(algo, job)
    eval_s = time.perf_counter() - t0
    print(json.dumps({"dataset": job.get("dataset"), "algo": job["algo"], "seed": job["seed"], "steps": job["steps"],
                      "returns": returns, "lengths": lengths, "train_seconds": round(train_s, 2),
                      "eval_seconds": round(eval_s, 2), "threads": torch.get_num_threads(),
                      "d3rlpy_version": d3rlpy.__version__, "torch_version": torch.__version__,
                      "gymnasium_version": gym.__version__, "mujoco_version": version_of("mujoco"),
                      "config": described, "unmatched": unmatched}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
