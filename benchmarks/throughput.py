"""Training and evaluation speed: every target of the speed issue measured in one command.

    python benchmarks/throughput.py [--device auto] [--steps 300] [--seeds 5]
        [--d3rlpy-python .d3venv/bin/python] [--skip-seeds] [--skip-eval] [--json OUT.json]

On one synthetic dataset in the D4RL layout with walker2d's shapes (100k transitions, 17-d
observations, 6-d actions, 1000-step episodes) it measures, on the chosen device:

1. gradient steps per second of every algorithm at its default MuJoCo config (batch 256,
   256x256 MLPs; CQL 3x256; DT the gym recipe: batch 64, K 20, embed 128, 3 layers), one seed,
   through the same sampler and ``update`` as ``offbench run``;
2. the same for d3rlpy's implementation of the algorithms it shares (bc, td3bc, iql, cql, awac,
   dt), on identical data and batch size, run in its own virtual environment by
   ``benchmarks/d3rlpy_throughput.py`` (on CUDA also with d3rlpy's ``compile_graph``);
3. ``--seeds`` seeds trained as one model against the same number of sequential single-seed
   runs (aggregate gradient steps per second);
4. evaluation: 100 DT episodes of HalfCheetah (always 1000 steps) with one batched policy call
   per step, against the simulator alone stepping the same vector env for the same steps;
5. the arithmetic of a step in both libraries (FLOPs of the matrix products, counted by torch)
   and the ceiling it sets: at this device's best matrix-product rate and with everything else
   free, the most steps/s offbench could reach, so the largest ratio to d3rlpy possible
   without changing the arithmetic;
6. an estimate of a whole table (DT on 9 datasets x 5 seeds x 100k steps, evaluated every 10k
   steps at 2 targets x 100 episodes) from the measured parts.

Prints a markdown report (the source of ``benchmarks/RESULTS.md``) with the machine and command.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from machine import describe
from arithmetic import flops_per_step, peak_matmul_rate

from offbench.algos import get_algorithm
from offbench.batches import seed_batches
from offbench.data.dataset import Dataset
from offbench.data.spec import get_spec
from offbench.devices import resolve_device

SHARED = ["bc", "td3bc", "iql", "cql", "awac", "dt"]  # implemented by d3rlpy too
OURS_ONLY = ["pbc", "rwr", "awr", "bcq", "bear", "brac"]
DISCRETE = ["qrdqn", "rem"]  # measured on discrete-action data of the same size (6 actions)
TARGET_VS_D3RLPY = {"cpu": 2.0, "cuda": 3.0}
ABSOLUTE_GPU_TARGETS = {"dt": 1000.0, "iql": 2000.0, "td3bc": 2000.0}


def synthetic_d4rl(n: int = 100_000, obs_dim: int = 17, act_dim: int = 6, episode: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays in the D4RL layout: smooth random observations, actions in [-1, 1], timeouts every ``episode`` steps."""
    rng = np.random.default_rng(seed)
    obs = np.cumsum(rng.normal(0, 0.1, (n, obs_dim)), axis=0).astype(np.float32)
    timeouts = np.zeros(n, np.float32)
    timeouts[episode - 1 :: episode] = 1
    return {"observations": obs, "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
            "rewards": rng.normal(1, 0.5, n).astype(np.float32), "terminals": np.zeros(n, np.float32),
            "timeouts": timeouts}


def to_dataset(arrays: dict[str, np.ndarray]) -> Dataset:
    ends = np.flatnonzero(arrays["timeouts"] > 0)
    return Dataset(observations=arrays["observations"], actions=arrays["actions"], rewards=arrays["rewards"],
                   terminals=arrays["terminals"] > 0, timeouts=arrays["timeouts"] > 0,
                   episode_starts=np.concatenate([[0], ends[:-1] + 1]).astype(np.int64))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def discrete_twin(data: Dataset, actions: int = 6) -> Dataset:
    """``data`` with each action vector replaced by one of ``actions`` discrete actions."""
    return Dataset(observations=data.observations, actions=np.argmax(data.actions, axis=1) % actions,
                   rewards=data.rewards, terminals=data.terminals, timeouts=data.timeouts,
                   episode_starts=data.episode_starts)


def training_step(name: str, data: Dataset, device: torch.device, seeds: int) -> Callable[[], Any]:
    """One sample-and-update step of ``name`` at its default MuJoCo config, as in ``offbench run``
    (the discrete-action algorithms: their class defaults, on :func:`discrete_twin` data).
    ``name`` may carry overrides after a colon: ``brac:behavior_steps=0`` (BRAC's actor-critic
    phase; its first 300k steps fit the behaviour policy alone)."""
    spec = get_spec("walker2d-medium")
    algo_name, _, extra = name.partition(":")
    if algo_name in DISCRETE:
        data = discrete_twin(data)
    cls = get_algorithm(algo_name)
    overrides = dict(kv.split("=", 1) for kv in extra.split(",") if kv)
    config = cls.Config.for_dataset(spec).with_overrides(overrides)
    algo = cls.for_data(config, data, spec, device, list(range(seeds)))
    sampler = seed_batches(algo, [algo.make_sampler(data, np.random.default_rng(s)) for s in range(seeds)])
    return lambda: algo.update(sampler.sample())


def steps_per_second(name: str, data: Dataset, device: torch.device, seeds: int, steps: int, warmup: int) -> float:
    """Gradient steps per second (each step updates all ``seeds``), sampling included."""
    step = training_step(name, data, device, seeds)
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps / (time.perf_counter() - t0)


def step_flops(name: str, data: Dataset, device: torch.device) -> float:
    """Matrix-product FLOPs of one single-seed step (after a few untimed ones)."""
    step = training_step(name, data, device, 1)
    for _ in range(3):
        step()
    return flops_per_step(step)


def d3rlpy_rates(python: str, arrays: dict[str, np.ndarray], device: torch.device, steps: int, warmup: int,
                 compile_graph: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **arrays)
        cmd = [python, str(Path(__file__).with_name("d3rlpy_throughput.py")), "--data", str(path),
               "--algos", ",".join(SHARED), "--steps", str(steps), "--warmup", str(warmup),
               "--device", "cuda:0" if device.type == "cuda" else "cpu", "--threads", str(torch.get_num_threads())]
        out = subprocess.run(cmd + (["--compile"] if compile_graph else []), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"d3rlpy benchmark failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout)


def evaluation_speed(device: torch.device, episodes: int = 100) -> dict[str, float]:
    """DT (untrained: the speed does not depend on the weights) on HalfCheetah, vs the simulator alone."""
    import gymnasium as gym

    from offbench.envs.factory import make_env
    from offbench.evaluate import rollout

    spec = get_spec("halfcheetah-medium")
    data = to_dataset(synthetic_d4rl())
    cls = get_algorithm("dt")
    algo = cls.for_data(cls.Config.for_dataset(spec), data, spec, device, [0])
    t0 = time.perf_counter()
    ev = rollout(algo.policy(spec.target_returns[0], [torch.Generator().manual_seed(0)]), spec, episodes, [0])[0]
    t_eval = time.perf_counter() - t0
    steps = int(ev.lengths.max())
    vec = gym.vector.SyncVectorEnv([lambda: make_env(spec) for _ in range(episodes)])
    vec.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, episodes, vec.single_action_space.shape[0])).astype(np.float32)
    t0 = time.perf_counter()
    for t in range(steps):
        vec.step(actions[t])
    t_sim = time.perf_counter() - t0
    vec.close()
    return {"episodes": episodes, "steps": steps, "eval_seconds": t_eval, "simulator_seconds": t_sim,
            "ratio": t_eval / t_sim}


def machine(device: torch.device) -> str:
    return describe(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=300, help="timed gradient steps per measurement")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--algos", default=",".join(SHARED + OURS_ONLY + DISCRETE))
    ap.add_argument("--d3rlpy-python", default=None, help="python of a virtual env with d3rlpy (see d3rlpy_throughput.py)")
    ap.add_argument("--repeats", type=int, default=1, help="measure each library this many times, alternating; report medians")
    ap.add_argument("--skip-seeds", action="store_true", help="no seeds-together measurement")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    device = resolve_device(args.device)
    algos = args.algos.split(",")
    arrays = synthetic_d4rl()
    data = to_dataset(arrays)
    raw: dict[str, Any] = {"machine": machine(device), "command": " ".join([Path(sys.executable).name, *sys.argv]),
                           "ours": {}, "seeds": {}}
    # offbench, then d3rlpy, --repeats times over: a pair measured close in time shares the
    # machine's state, so each repeat gives one ratio and the report takes medians
    raw["repeats"] = {"ours": {name: [] for name in algos}, "d3rlpy": {}, "d3rlpy_compiled": {}}
    for _ in range(args.repeats):
        for name in algos:
            raw["repeats"]["ours"][name].append(steps_per_second(name, data, device, 1, args.steps, args.warmup))
            print(f"{name}: {raw['repeats']['ours'][name][-1]:.1f} steps/s", file=sys.stderr)
        for key, compiled in (("d3rlpy", False), ("d3rlpy_compiled", True)):
            if args.d3rlpy_python and (device.type == "cuda" or not compiled):
                raw[key] = d3rlpy_rates(args.d3rlpy_python, arrays, device, args.steps, args.warmup, compiled)
                for name, res in raw[key]["results"].items():
                    raw["repeats"][key].setdefault(name, []).append(res.get("steps_per_s"))
    raw["ours"] = {name: float(np.median(rates)) for name, rates in raw["repeats"]["ours"].items()}
    for key in ("d3rlpy", "d3rlpy_compiled"):
        for name, rates in raw["repeats"][key].items():
            ok = [r for r in rates if r]
            if ok:  # the median of the repeats that ran; a failed repeat is counted in the report
                raw[key]["results"][name]["steps_per_s"] = float(np.median(ok))
    raw["flops"] = {name: step_flops(name, data, device) for name in algos}
    raw["peak_flops"] = peak_matmul_rate(device)
    for name in [] if args.skip_seeds else algos:
        raw["seeds"][name] = steps_per_second(name, data, device, args.seeds, args.steps, args.warmup)
        print(f"{name} x{args.seeds}: {raw['seeds'][name]:.1f} steps/s", file=sys.stderr)
    if not args.skip_eval:
        raw["eval"] = evaluation_speed(device)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    print(report(raw, args, device))


def report(raw: dict[str, Any], args: argparse.Namespace, device: torch.device) -> str:
    dev = device.type
    lines = [f"Machine: {raw['machine']}.", f"Command: `{raw['command']}`.", "",
             f"Gradient steps per second, one seed, default configs (batch 256; DT 64 x K 20; BCQ and BEAR 100; "
             f"QR-DQN and REM 32 on discrete actions), {args.steps} timed steps "
             f"after {args.warmup} warm-up steps, sampling included.", ""]
    d3 = raw.get("d3rlpy", {}).get("results", {})
    d3c = raw.get("d3rlpy_compiled", {}).get("results", {})
    head = "| algorithm | offbench | d3rlpy " + (f"{raw['d3rlpy']['d3rlpy_version']} " if "d3rlpy" in raw else "") + \
           "| ratio |" + (" d3rlpy compile_graph | ratio |" if d3c else "") + (" target |" if dev == "cuda" else "")
    lines += [head, "|---" * (head.count("|") - 1) + "|"]
    for name, ours in raw["ours"].items():
        row = [name, f"{ours:,.1f}"]
        ref = d3.get(name, {}).get("steps_per_s")
        row += [f"{ref:,.1f}", f"{paired_ratio(raw, name, ('d3rlpy',)):.2f}x"] if ref else ["—", "—"]
        if d3c:
            refc = d3c.get(name, {}).get("steps_per_s")
            both = ("d3rlpy", "d3rlpy_compiled")
            row += [f"{refc:,.1f}", f"{paired_ratio(raw, name, both):.2f}x"] if refc else ["—", "—"]
        if dev == "cuda":
            row.append(f">= {ABSOLUTE_GPU_TARGETS[name]:,.0f}" if name in ABSOLUTE_GPU_TARGETS else "")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Target: >= {TARGET_VS_D3RLPY[dev]:.0f}x d3rlpy on the same {dev.upper()}."]
    if args.repeats > 1 and d3:
        lines += ["", f"Medians of {args.repeats} repeats (offbench then d3rlpy, alternating); the ratio is the median "
                      "of each repeat's ratio. Per repeat: " + "; ".join(
                          f"{name} " + ", ".join(f"{o / r:.2f}x" if r else "d3rlpy failed" for o, r in zip(
                              raw["repeats"]["ours"][name], best_per_repeat(raw, name, ("d3rlpy",))))
                          for name in raw["ours"] if name in d3) + "."]
    if "flops" in raw:
        lines += ceiling_table(raw)
    if raw["seeds"]:
        lines += ["", f"{args.seeds} seeds as one model vs {args.seeds} sequential single-seed runs (aggregate gradient "
                  f"steps per second), and what `offbench run --seeds {args.seeds}` does on this device:", "",
                  "| algorithm | sequential | together | speed-up | `--seeds` here |", "|---|---|---|---|---|"]
    for name, rate in raw["seeds"].items():
        one = raw["ours"][name]
        apart = dev == "cpu" and get_algorithm(name.partition(":")[0]).cpu_seeds_together == 1
        lines.append(f"| {name} | {one:,.1f} | {args.seeds * rate:,.1f} | {args.seeds * rate / one:.2f}x | "
                     f"{'apart (1.00x)' if apart else 'together'} |")
    if "eval" in raw:
        e = raw["eval"]
        lines += ["", f"Evaluation: {e['episodes']} DT episodes of HalfCheetah ({e['steps']} steps each) in "
                      f"{e['eval_seconds']:.1f} s; the simulator alone needs {e['simulator_seconds']:.1f} s for the same "
                      f"steps: {e['ratio']:.2f}x (target <= 2x)."]
        # a whole table: DT, 9 datasets x 5 seeds x 100k steps, evaluated every 10k at 2 targets x 100 episodes
        train_s = 9 * 100_000 / raw["seeds"].get("dt", raw["ours"].get("dt", float("nan")))
        eval_s = 9 * 10 * 2 * 5 * e["eval_seconds"]  # 5 seeds' episodes cost at most 5x one seed's
        lines += ["", f"Whole DT table estimate (9 datasets x 5 seeds x 100k steps, 5 seeds as one model; 10 evaluations "
                      f"x 2 targets x 100 episodes per seed): training {train_s / 3600:.2f} h + evaluation "
                      f"{eval_s / 3600:.2f} h = {(train_s + eval_s) / 3600:.2f} h on this machine (target on one H100: <= 1 h)."]
    return "\n".join(lines)


def best_per_repeat(raw: dict[str, Any], name: str, keys: tuple[str, ...]) -> list[float | None]:
    """d3rlpy's rate in each repeat: the fastest of its modes ``keys`` (None where all failed)."""
    rates = [raw["repeats"][k].get(name, [None] * len(raw["repeats"]["ours"][name])) for k in keys]
    return [max((r for r in per if r), default=None) for per in zip(*rates)]


def paired_ratio(raw: dict[str, Any], name: str, keys: tuple[str, ...]) -> float:
    """offbench's rate over d3rlpy's fastest mode: the median of the ratios of rates measured in the
    same repeat (repeats where d3rlpy failed left out)."""
    pairs = zip(raw["repeats"]["ours"][name], best_per_repeat(raw, name, keys))
    return float(np.median([ours / ref for ours, ref in pairs if ref]))


def ceiling_table(raw: dict[str, Any]) -> list[str]:
    """Each step's matrix-product arithmetic in both libraries, the rate each runs it at, and the
    most steps/s offbench could reach if its products ran at this device's peak and nothing else
    took any time: against d3rlpy's measured rate, the largest ratio possible without changing
    the arithmetic."""
    peak, d3 = raw["peak_flops"], raw.get("d3rlpy", {}).get("results", {})
    modes = tuple(k for k in ("d3rlpy", "d3rlpy_compiled") if k in raw)
    lines = ["", f"Arithmetic per step (FLOPs of the matrix products, attention's included, counted by torch's "
                 f"FlopCounterMode) and the ceiling it sets: this device's best float32 matrix-product rate "
                 f"is {peak / 1e9:,.1f} GFLOP/s, so a step of F FLOPs takes at least F / peak.", "",
             "| algorithm | offbench GFLOP/step | d3rlpy GFLOP/step | offbench GFLOP/s | d3rlpy GFLOP/s | "
             "offbench ceiling steps/s | largest possible ratio |", "|---|---|---|---|---|---|---|"]
    for name, flops in raw["flops"].items():
        ours, ceiling = raw["ours"][name], peak / flops
        ref = d3.get(name, {})
        rate, ref_flops = ref.get("steps_per_s"), ref.get("flops_per_step")
        fastest = [r for r in best_per_repeat(raw, name, modes) if r] if modes else []
        cells = [name, f"{flops / 1e9:.3f}", f"{ref_flops / 1e9:.3f}" if ref_flops else "—",
                 f"{ours * flops / 1e9:,.1f}", f"{rate * ref_flops / 1e9:,.1f}" if rate and ref_flops else "—",
                 f"{ceiling:,.1f}", f"{ceiling / float(np.median(fastest)):.2f}x" if fastest else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
