"""Gradient steps per second of d3rlpy's BC, TD3+BC, IQL, CQL, AWAC and DT on one .npz dataset.

A reference point for offbench's own throughput numbers. Run it in a SEPARATE virtual environment
that has d3rlpy installed; d3rlpy is never a dependency of offbench. The environment used here
(torch pinned first so that pip never resolves torch itself and pulls the CUDA wheels):

    python3 -m venv .d3venv
    .d3venv/bin/pip install torch==2.13.0
    echo torch==2.13.0 > torch-pin.txt
    .d3venv/bin/pip install -c torch-pin.txt d3rlpy==2.8.1 mujoco==4.0.0 imageio  # MuJoCo: parity.py evaluates Hopper
    .d3venv/bin/python -c "import d3rlpy; print(d3rlpy.__version__)"

(d3rlpy 2.8.1 requires torch>=2.5, so the pin is kept; should a later d3rlpy ask for another torch,
install it with --no-deps and its other requirements by hand.)

Usage:

    .d3venv/bin/python benchmarks/d3rlpy_throughput.py --data FILE.npz \\
        --algos bc,td3bc,iql,cql,awac,dt --steps 1000 --warmup 100 --device cpu [--compile] [--threads 1]

The .npz holds float32 observations (N, obs_dim), actions (N, act_dim) in [-1, 1], rewards (N,),
terminals (N,) and timeouts (N,) in the D4RL layout; episodes end at a terminal or a timeout (and
at the end of the data). Each algorithm is built with d3rlpy's own implementation, configured like
offbench's defaults as far as d3rlpy allows (``d3rlpy_configs.py``; the "config" entry of each result
says what was used).
Observations are standardized with d3rlpy's StandardObservationScaler, as offbench does.

Only gradient steps are timed: after dataset construction, scaler fitting and model building,
``--warmup`` steps run untimed, then ``--steps`` steps are timed. A step is what one iteration of
d3rlpy's ``fit`` loop does without its logging: sample a batch with d3rlpy's own sampler
(``sample_transition_batch`` / ``sample_trajectory_batch``) and call ``algo.update(batch)``.
``fit`` is never called, so no d3rlpy logger is created and nothing is written to disk.
On CUDA the clock stops after ``torch.cuda.synchronize()``. ``--compile`` sets d3rlpy's
``compile_graph=True`` (torch.compile + CUDA graphs), which d3rlpy applies on CUDA devices only;
each result's "compiled" field tells whether it was in effect.

Prints one JSON object on stdout; logs go to stderr. A failing algorithm gets {"error": "..."}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
from arithmetic import flops_per_step

with contextlib.redirect_stdout(sys.stderr):  # keep import-time notices (gym's) off stdout
    import d3rlpy
    from d3rlpy.algos.utility import (
        build_scalers_with_trajectory_slicer,
        build_scalers_with_transition_picker,
    )
    from d3rlpy.dataset import MDPDataset
from d3rlpy_configs import ALGOS, TRAJECTORY_ALGOS, load_dataset, log, make_config


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(name: str, dataset: MDPDataset, args: argparse.Namespace, max_timestep: int) -> dict[str, Any]:
    """Builds one algorithm and times ``args.steps`` sample-and-update steps after ``args.warmup``."""
    config, described, _ = make_config(name, compile_graph=args.compile, total_steps=args.warmup + args.steps,
                                       max_timestep=max_timestep)
    algo = config.create(device=args.device)
    sample: Callable[[], Any]
    if name in TRAJECTORY_ALGOS:
        build_scalers_with_trajectory_slicer(algo, dataset)
        sample = lambda: dataset.sample_trajectory_batch(config.batch_size, length=config.context_size)
    else:
        build_scalers_with_transition_picker(algo, dataset)
        sample = lambda: dataset.sample_transition_batch(config.batch_size)
    algo.build_with_dataset(dataset)
    for _ in range(args.warmup):
        algo.update(sample())
    sync(args.device)
    start = time.perf_counter()
    for _ in range(args.steps):
        algo.update(sample())
    sync(args.device)
    seconds = time.perf_counter() - start
    return {"steps_per_s": round(args.steps / seconds, 2), "steps": args.steps, "seconds": round(seconds, 4),
            "flops_per_step": None if algo.compiled else counted_flops(lambda: algo.update(sample())),
            "compiled": bool(algo.compiled), "config": described}


def counted_flops(step: Callable[[], Any]) -> float | None:
    """FLOPs of one step, or None if counting fails (the timing already measured is kept)."""
    try:
        return flops_per_step(step)
    except Exception:  # noqa: BLE001 -- a failed count must not discard the measured rate
        traceback.print_exc(file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz with observations, actions, rewards, terminals, timeouts")
    parser.add_argument("--algos", default=",".join(ALGOS), help=f"comma-separated subset of {','.join(ALGOS)}")
    parser.add_argument("--steps", type=int, default=1000, help="timed gradient steps per algorithm")
    parser.add_argument("--warmup", type=int, default=100, help="untimed gradient steps before timing")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N")
    parser.add_argument("--compile", action="store_true", help="d3rlpy's compile_graph=True (CUDA only in d3rlpy)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    unknown = sorted(set(algos) - set(ALGOS))
    if unknown:
        parser.error(f"unknown algorithms: {', '.join(unknown)} (choose from {', '.join(ALGOS)})")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    dataset, data_info = load_dataset(args.data)
    max_timestep = max(1000, max(ep.size() for ep in dataset.episodes))  # d3rlpy indexes timesteps up to it
    log(f"dataset: {data_info}")
    results: dict[str, Any] = {}
    for name in algos:
        d3rlpy.seed(args.seed)
        log(f"{name}: {args.warmup} warmup + {args.steps} timed steps on {args.device}")
        try:
            results[name] = bench(name, dataset, args, max_timestep)
            log(f"{name}: {results[name]['steps_per_s']} steps/s")
        except Exception as exc:  # noqa: BLE001 -- one algorithm's failure must not hide the others' results
            traceback.print_exc(file=sys.stderr)
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps({"d3rlpy_version": d3rlpy.__version__, "torch_version": torch.__version__,
                      "device": args.device, "threads": torch.get_num_threads(), "compile": args.compile,
                      "data": data_info, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
