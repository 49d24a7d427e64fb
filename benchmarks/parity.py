"""Score parity between offbench and d3rlpy 2.8.1: both libraries train the same algorithms on the
same data, with the same budget, and are evaluated on the same episodes of the same environment.

    python benchmarks/parity.py --d3rlpy-python PYTHON \\
        --datasets hopper-medium-replay-local,hopper-medium-expert-local \\
        --algos bc,td3bc,iql,cql,awac,dt --seeds 5 --steps 10000 [--dt-steps N] [--cql-steps N] \\
        --eval-episodes 10 --results DIR [--workers 2] [--device cpu] [--set [ALGO.]KEY=VALUE ...] \\
        [--out benchmarks/parity.md]

PYTHON is the interpreter of a separate virtual environment with d3rlpy 2.8.1 (the recipe is in
``d3rlpy_throughput.py``; add the MuJoCo bindings at offbench's version, and ``imageio``, which
gymnasium's MuJoCo module imports: ``pip install -c TORCH_PIN mujoco==VERSION imageio``).
d3rlpy 2.8.1 requires gymnasium 1.0.0; offbench may use a later gymnasium. The report records
both environments' gymnasium and MuJoCo versions.

``--set`` overrides offbench's config as ``offbench run --set`` does, and d3rlpy's runs follow the
result. DT's ``corl`` recipe trains on batches of 4096 windows, far too slow on a CPU: there,
``--set dt.recipe=paper`` (batches of 64) is the practical choice; the report states the configs.

The datasets must be in offbench's cache (``offbench generate hopper --preset quick`` makes the
hopper ``-local`` sets); nothing is generated here: a missing one stops the script (exit 2) with
the command that makes it.

- offbench: ``plan_runs``/``run_plans`` with ``steps`` gradient steps, one evaluation at the end
  (``eval_every = steps``) of ``--eval-episodes`` episodes; each seed's final mean return and
  normalized score are read from its ``summary.json``. Run records go to ``DIR/offbench`` (an
  interrupted benchmark resumes: finished runs are not run again).
- d3rlpy: ``d3rlpy_parity_worker.py`` in the d3rlpy environment, one process per (dataset,
  algorithm, seed), ``--workers`` at a time. It reads the dataset exported once from offbench's
  cache to ``DIR/data/*.npz`` (with offbench's episode boundaries), builds d3rlpy's algorithm set
  like offbench's resolved config of that run (``d3rlpy_configs.make_config``), seeds it with
  ``d3rlpy.seed(seed)``, trains the same number of gradient steps and evaluates the greedy policy in
  the same gymnasium environment on the same episodes: episode ``e`` of seed ``s`` is reset with
  the seed offbench's final evaluation gives it (``hash_seed(s, steps, 0) % 2**31 + e``). DT is
  conditioned on offbench's first target return. Results go to ``DIR/d3rlpy`` (one JSON per run).

Per (dataset, algorithm): both libraries' mean ± sample std over seeds, and the difference of the
means (offbench - d3rlpy) with its 95% Welch t-interval; the verdict is "within" when the interval
contains 0 or the difference is no larger than the larger of the two sample stds, else "outside".
Writes the report (Markdown) to ``--out`` and prints it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ALGOS = ("bc", "td3bc", "iql", "cql", "awac", "dt")
HERE = Path(__file__).resolve().parent
WORKER = HERE / "d3rlpy_parity_worker.py"

#: What differs between the libraries' implementations whatever the config (read in d3rlpy 2.8.1's
#: source and offbench's); the settings d3rlpy could not take are added per run by the worker.
IMPLEMENTATION_DIFFERENCES: dict[str, list[str]] = {
    "all": [
        "Random numbers: each library draws its own (initial weights, batches, noise), so seed s of one "
        "is not seed s of the other; only the evaluation episodes' environment seeds are shared.",
        "Transitions: d3rlpy builds next observations from the following step and drops the last step of "
        "every episode that ends without a terminal (a timeout, or the end of the data); offbench keeps "
        "that step with its stored next observation. The observation statistics of the standardization "
        "are fitted on the steps each library samples from (same formula, same eps).",
        "Evaluation: offbench steps all episodes of all seeds together (one batched policy call per step); "
        "d3rlpy one episode at a time through `predict`. Both use the policy's deterministic action.",
        "offbench trains several seeds of a seed-batched algorithm as one model (each seed's numbers as if "
        "alone, up to float rounding); d3rlpy trains one seed per process.",
    ],
    "td3bc": ["Delayed updates: both update the critics every step and the actor and both targets every "
              "2nd step; d3rlpy's fall on steps 1, 3, 5, ..., offbench's on steps 2, 4, 6, ..."],
    "iql": ["d3rlpy updates Q and V in one step of one optimizer (the sum of both losses), then the actor "
            "with the advantage from the updated V; offbench (CORL's order) steps V, then Q, then the actor "
            "with the advantage from V before its step."],
    "cql": ["d3rlpy updates the critics before the actor; offbench (CORL) the actor and the entropy "
            "temperature first.",
            "Bellman target without the entropy backup: d3rlpy evaluates the target critics at the policy's "
            "mean action at s'; offbench at a sampled action.",
            "Entropy temperature loss: d3rlpy differentiates exp(log alpha) * (log pi + target); offbench "
            "(CORL) log alpha * (log pi + target).",
            "d3rlpy's conservative loss subtracts its alpha threshold (10), a constant with a fixed alpha: "
            "no effect on the gradient."],
    "awac": ["Advantage weights: d3rlpy normalizes exp(A / lambda) with a softmax over the batch (times the "
             "batch size), without a cap; offbench uses exp(A / lambda) capped at `exp_adv_max`.",
             "Bellman target: d3rlpy's AWAC inherits SAC's, min target Q(s', a') - 1 * log pi(a'|s') with "
             "a' = tanh(mu + std * noise) (an entropy term at a fixed temperature of 1); offbench's has no "
             "entropy term and a' = clip(tanh(mu) + std * noise, -1, 1).",
             "d3rlpy sums the actor loss over the batch; offbench averages it (Adam makes this nearly "
             "irrelevant). Both update the critics before the actor."],
    "dt": ["Loss: d3rlpy sums the squared error over action dimensions and averages over every window slot, "
           "padding included; offbench averages over dimensions and real steps only. With gradient clipping "
           "(0.25) the step sizes differ.",
           "d3rlpy's transformer blocks use LayerNorm eps 0.003 (offbench PyTorch's 1e-5); its query, key and "
           "value are separate N(0, 0.02) Linear layers (offbench's fused projection is xavier-uniform, as "
           "CORL's nn.MultiheadAttention).",
           "Timesteps count from 1 in d3rlpy and from 0 in offbench; the embedding tables cover every step "
           "of an episode in both."],
}


# -- statistics ----------------------------------------------------------------------------------

def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): the difference of the means and its Welch t-interval
    (unequal variances, Welch-Satterthwaite degrees of freedom). With fewer than two values on a
    side the interval is (nan, nan); with no spread on either side it is the point itself."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return diff, math.nan, math.nan
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se2 = vx + vy
    if se2 == 0:
        return diff, diff, diff
    df = se2**2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(se2))
    return diff, diff - half, diff + half


def verdict(diff: float, low: float, high: float, std_a: float, std_b: float) -> str:
    """"within" if the interval contains 0 or |diff| is at most the larger sample std, "outside"
    otherwise; "n/a" when neither test can be made (fewer than two seeds on a side)."""
    spreads = [s for s in (std_a, std_b) if not math.isnan(s)]
    has_interval = not (math.isnan(low) or math.isnan(high))
    if not has_interval and not spreads:
        return "n/a"
    if has_interval and low <= 0.0 <= high:
        return "within"
    if spreads and abs(diff) <= max(spreads):
        return "within"
    return "outside"


def compare(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Both samples' size, mean and sample std (ddof 1; nan for one value), the difference of the
    means with its Welch interval, and the verdict."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) == 0 or len(y) == 0:
        raise ValueError("compare needs at least one value on each side")
    std_a = float(x.std(ddof=1)) if len(x) > 1 else math.nan
    std_b = float(y.std(ddof=1)) if len(y) > 1 else math.nan
    diff, low, high = welch_interval(x, y, confidence)
    return {"n_a": len(x), "mean_a": float(x.mean()), "std_a": std_a, "n_b": len(y), "mean_b": float(y.mean()),
            "std_b": std_b, "diff": diff, "low": low, "high": high,
            "verdict": verdict(diff, low, high, std_a, std_b)}


# -- running -------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate_command(name: str) -> str:
    """The command that makes a ``<env>-<level>-local`` dataset (``offbench generate``)."""
    from offbench.data.spec import all_specs

    spec = all_specs().get(name)
    if spec is not None and spec.params.get("command"):
        return str(spec.params["command"])
    env = name.split("-")[0]
    return f"offbench generate {env} --preset quick"


def missing_datasets(names: list[str]) -> list[str]:
    from offbench.data import cache
    from offbench.data.spec import all_specs

    specs = all_specs()
    return [n for n in names if n not in specs or not cache.is_cached(n)]


def export_npz(name: str, root: Path) -> tuple[Path, dict[str, Any]]:
    """The dataset as a D4RL-layout .npz for d3rlpy (once; the file name carries the content digest),
    with offbench's episode boundaries: an episode end without a terminal is marked a timeout. Also
    returns facts the report needs."""
    from offbench.data import cache

    data = cache.load(name)
    digest = str(data.attrs.get("content_sha256", "nodigest"))[:12]
    path = root / "data" / f"{name}-{digest}.npz"
    ends = np.zeros(len(data), dtype=bool)
    ends[data.episode_ends - 1] = True
    timeouts = (np.asarray(data.timeouts, dtype=bool) | ends) & ~np.asarray(data.terminals, dtype=bool)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, observations=np.asarray(data.observations, np.float32),
                 actions=np.asarray(data.actions, np.float32), rewards=np.asarray(data.rewards, np.float32), terminals=np.asarray(data.terminals, np.float32),
                 timeouts=timeouts.astype(np.float32))
        tmp.replace(path)
    facts: dict[str, Any] = {"transitions": len(data), "episodes": int(data.num_episodes),
                             "dropped_by_d3rlpy": int(timeouts.sum()),
                             "max_episode_length": int(data.episode_lengths.max())}
    if data.next_observations is not None:  # d3rlpy takes observations[t + 1] where offbench takes the stored ones
        inner = ~ends
        facts["next_obs_max_abs_diff"] = float(np.abs(data.next_observations[:-1][inner[:-1]]
                                                      - data.observations[1:][inner[:-1]]).max(initial=0.0))
    return path, facts


def steps_of(algo: str, args: argparse.Namespace) -> int:
    if algo == "dt" and args.dt_steps:
        return args.dt_steps
    if algo == "cql" and args.cql_steps:
        return args.cql_steps
    return args.steps


def d3rlpy_job(plan: Any, npz: Path, longest: int, args: argparse.Namespace, threads: int) -> dict[str, Any]:
    """What the worker needs for one run, taken from offbench's plan of the same run (``longest``:
    the dataset's longest episode)."""
    from offbench.algos import get_algorithm
    from offbench.data import cache
    from offbench.train import hash_seed

    spec = cache.run_spec(plan.dataset)
    cls = get_algorithm(plan.algo)
    steps, episodes = plan.config.steps, plan.config.eval_episodes
    first = hash_seed(plan.seed, steps, 0) % 2**31  # offbench's final evaluation, first target (train.evaluate)
    return {"dataset": plan.dataset, "data": str(npz), "algo": plan.algo, "seed": plan.seed, "steps": steps,
            "device": "cuda:0" if args.device.startswith("cuda") else "cpu", "threads": threads,
            "config": json.loads(json.dumps(plan.config.to_dict())),
            # offbench's DT embeds timesteps 0..max(cap, longest); d3rlpy's count from 1: one more entry
            "max_timestep": max(spec.max_episode_steps, longest) + 1,
            "target_return": float(spec.target_returns[0]) if cls.return_conditioned else None,
            "env": {"id": spec.env, "max_episode_steps": spec.max_episode_steps, "kwargs": dict(spec.env_kwargs)},
            "episode_seeds": [first + e for e in range(episodes)]}


def run_d3rlpy(jobs: list[tuple[dict[str, Any], Path]], python: str, workers: int, threads: int) -> list[str]:
    """Run the jobs whose result file is missing, ``workers`` at a time; return the failures."""
    todo = [(job, out) for job, out in jobs if not out.is_file()]
    failures: list[str] = []

    def one(item: tuple[dict[str, Any], Path]) -> None:
        job, out = item
        label = f"{job['dataset']}/{job['algo']}/seed-{job['seed']}"
        out.parent.mkdir(parents=True, exist_ok=True)
        job_file = out.with_suffix(".job.json")
        job_file.write_text(json.dumps(job, indent=1))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        log(f"d3rlpy {label}: start")
        t0 = time.perf_counter()
        proc = subprocess.run([python, str(WORKER), "--job", str(job_file)], capture_output=True, text=True,
                              env=env, cwd=str(HERE), check=False)
        out.with_suffix(".log").write_text(proc.stderr)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            failures.append(f"{label}: {tail}")
            log(f"d3rlpy {label}: FAILED ({tail}); log in {out.with_suffix('.log')}")
            return
        result = json.loads(lines[-1])
        result["wall_seconds"] = round(time.perf_counter() - t0, 2)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(out)
        log(f"d3rlpy {label}: mean return {np.mean(result['returns']):.1f} "
            f"(train {result['train_seconds']:.0f} s, eval {result['eval_seconds']:.0f} s)")

    if todo:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(one, todo))
    return failures


def probe(python: str) -> dict[str, Any]:
    """Versions in the d3rlpy environment (and that it works at all)."""
    code = ("import contextlib, json, sys\n"
            "with contextlib.redirect_stdout(sys.stderr):\n"
            "    import d3rlpy, gymnasium, torch\n"
            "try:\n    import mujoco; mj = mujoco.__version__\nexcept ImportError:\n    mj = None\n"
            "print(json.dumps({'d3rlpy': d3rlpy.__version__, 'gymnasium': gymnasium.__version__, "
            "'torch': torch.__version__, 'mujoco': mj}))")
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"--d3rlpy-python {python} does not import d3rlpy: "
                         f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def offbench_versions() -> dict[str, Any]:
    import gymnasium
    import torch

    import offbench

    try:
        import mujoco
        mj = mujoco.__version__
    except ImportError:
        mj = None
    return {"offbench": offbench.__version__, "gymnasium": gymnasium.__version__, "torch": torch.__version__,
            "mujoco": mj}


# -- report --------------------------------------------------------------------------------------

def fmt(mean: float, std: float) -> str:
    return f"{mean:.1f} ± {std:.1f}" if not math.isnan(std) else f"{mean:.1f}"


def cell_rows(cells: list[dict[str, Any]]) -> list[str]:
    rows = ["| dataset | algorithm | steps | seeds (offbench / d3rlpy) | offbench | d3rlpy | difference [95% CI] "
            "| verdict | return: offbench / d3rlpy |", "|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        s = c["stats"]
        if s is None:
            rows.append(f"| {c['dataset']} | {c['algo']} | {c['steps']} | {c['n_ours']} / {c['n_theirs']} | "
                        f"{c['ours_text']} | {c['theirs_text']} | — | n/a | — |")
            continue
        ci = f"[{s['low']:+.1f}, {s['high']:+.1f}]" if not math.isnan(s["low"]) else "[—]"
        rows.append(f"| {c['dataset']} | {c['algo']} | {c['steps']} | {s['n_a']} / {s['n_b']} | "
                    f"{fmt(s['mean_a'], s['std_a'])} | {fmt(s['mean_b'], s['std_b'])} | {s['diff']:+.1f} {ci} | "
                    f"{s['verdict']} | {c['return_ours']:.0f} / {c['return_theirs']:.0f} |")
    return rows


def shown_command(argv: list[str]) -> str:
    """The command as the report shows it, without machine paths: the d3rlpy interpreter becomes
    ``D3RLPY_PYTHON``, another absolute path outside the working directory its option's name."""
    cwd = Path.cwd().resolve()

    def hide(option: str, value: str) -> str:
        if not (option.startswith("--") and os.path.isabs(value)):
            return value
        path = Path(value).resolve()
        if option == "--d3rlpy-python":
            return "D3RLPY_PYTHON"
        return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else option[2:].upper().replace("-", "_")

    shown = []
    for i, arg in enumerate(argv):
        if arg.startswith("--") and "=" in arg:
            option, value = arg.split("=", 1)
            shown.append(f"{option}={hide(option, value)}")
        else:
            shown.append(hide(argv[i - 1] if i else "", arg))
    return " ".join(["python", "benchmarks/parity.py", *[shlex.quote(a) for a in shown]])


def report(cells: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from machine import describe

    ours, theirs = meta["versions"]["offbench"], meta["versions"]["d3rlpy"]
    budgets = ", ".join(f"{a} {n:,}" for a, n in meta["steps"].items())
    lines = [
        "# Score parity: offbench and d3rlpy 2.8.1", "",
        f"Command: `{meta['command']}`.", "",
        f"Machine: {describe()}.", "",
        f"Date: {meta['date']}.", "",
        f"Libraries: offbench {ours['offbench']} (torch {ours['torch']}, gymnasium {ours['gymnasium']}, MuJoCo "
        f"{ours['mujoco']}); d3rlpy {theirs['d3rlpy']} in a separate virtual environment (torch {theirs['torch']}, "
        f"gymnasium {theirs['gymnasium']}, MuJoCo {theirs['mujoco']}). Device: {meta['device']}.", "",
        f"Budgets: gradient steps per run: {budgets}; {meta['seeds']} seeds (0..{meta['seeds'] - 1}) per library; "
        f"one evaluation after the last step, {meta['eval_episodes']} episodes per seed in "
        f"{meta['envs']}, the same episodes in both libraries (episode e of seed s reset with "
        f"`hash_seed(s, steps, 0) % 2**31 + e`, offbench's final-evaluation seeds), deterministic actions; DT "
        f"conditioned on offbench's first target return ({meta['dt_targets']}).", "",
        f"Wall time of this invocation: offbench {meta['wall']['offbench'] / 60:.1f} min, d3rlpy "
        f"{meta['wall']['d3rlpy'] / 60:.1f} min ({meta['workers']} processes at a time, {meta['threads']} torch "
        "thread(s) each; runs finished by an earlier invocation are not counted).", "",
        "## Results", "",
        "Normalized score of the final evaluation (0 = the reference random policy, 100 = the reference expert "
        "of the dataset), mean ± sample std over seeds; difference = offbench − d3rlpy with its 95% Welch "
        "t-interval. Verdict: *within* if the interval contains 0 or the difference is no larger than the "
        "larger of the two sample stds, else *outside*. The last column gives the mean raw returns.", "",
        *cell_rows(cells), "",
        "## What differs between the libraries", "",
        "Settings of offbench's resolved configs that d3rlpy cannot take (each d3rlpy run is otherwise set "
        "like offbench's config of the same run: batch size, network widths, learning rates and schedules, "
        "discount, target rates, algorithm coefficients, observation standardization `(s - mean) / (std + "
        "eps)` with offbench's eps, reward scaling):", "",
    ]
    lines += [f"- {algo}: {item}" for algo, items in meta["unmatched"].items() for item in items] or \
             ["- none"]
    lines += ["", "Differences in the implementations (not settings):", ""]
    for algo in ["all", *meta["algos"]]:
        lines += [f"- {algo}: {item}" for item in IMPLEMENTATION_DIFFERENCES.get(algo, [])]
    lines += ["", "Data:", ""]
    for name, f in meta["data"].items():
        note = f"- {name}: {f['transitions']:,} transitions, {f['episodes']} episodes; d3rlpy drops " \
               f"{f['dropped_by_d3rlpy']} of them (the last step of each episode without a terminal)"
        if "next_obs_max_abs_diff" in f:
            note += f"; stored next observations vs the following step's observation: largest difference " \
                    f"{f['next_obs_max_abs_diff']:.2g}"
        lines.append(note + ".")
    if meta["failures"]:
        lines += ["", "Failed runs (left out of the table):", "", *[f"- {f}" for f in meta["failures"]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d3rlpy-python", required=True, help="python of the virtual environment with d3rlpy 2.8.1")
    parser.add_argument("--datasets", default="hopper-medium-replay-local,hopper-medium-expert-local")
    parser.add_argument("--algos", default=",".join(ALGOS), help=f"comma-separated subset of {','.join(ALGOS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, required=True, help="gradient steps per run")
    parser.add_argument("--dt-steps", type=int, default=None, help="DT's gradient steps (default --steps)")
    parser.add_argument("--cql-steps", type=int, default=None, help="CQL's gradient steps (default --steps)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--results", type=Path, required=True, help="where both libraries' runs are recorded")
    parser.add_argument("--workers", type=int, default=2, help="processes at a time (each library in turn)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both libraries)")
    parser.add_argument("--out", type=Path, default=HERE / "parity.md", help="the Markdown report")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="[ALGO.]KEY=VALUE",
                        help="override offbench's config as `offbench run --set` does (e.g. dt.recipe=paper); "
                             "d3rlpy's runs follow the resulting config")
    args = parser.parse_args(argv)
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(algos) - set(ALGOS))
    if unknown:
        parser.error(f"unknown algorithms: {', '.join(unknown)} (choose from {', '.join(ALGOS)})")
    if args.seeds < 1 or args.steps < 1 or args.eval_episodes < 1 or args.workers < 1 or not datasets:
        parser.error("--seeds, --steps, --eval-episodes and --workers must be >= 1, and --datasets not empty")
    missing = missing_datasets(datasets)
    if missing:
        commands = sorted({generate_command(n) for n in missing})
        print(f"not in offbench's cache: {', '.join(missing)}; make them first with:\n  " + "\n  ".join(commands),
              file=sys.stderr)
        return 2
    if not Path(args.d3rlpy_python).is_file():
        parser.error(f"--d3rlpy-python {args.d3rlpy_python}: no such file")

    from offbench.data import cache
    from offbench.launch import plan_runs, run_plans
    from offbench.results import read_json

    for name in datasets:
        spec, data = cache.run_spec(name), cache.load(name)
        if spec.domain == "atari" or spec.reward != "dense" or data.discrete_actions:
            parser.error(f"{name}: parity covers continuous-action datasets with dense rewards")
    versions = {"offbench": offbench_versions(), "d3rlpy": probe(args.d3rlpy_python)}
    log(f"d3rlpy environment: {versions['d3rlpy']}")
    if versions["d3rlpy"]["mujoco"] != versions["offbench"]["mujoco"]:
        log(f"warning: MuJoCo {versions['d3rlpy']['mujoco']} in the d3rlpy environment, "
            f"{versions['offbench']['mujoco']} in offbench's: the simulators may differ")
    root = args.results.resolve()
    exported = {name: export_npz(name, root) for name in datasets}
    plans = []
    for algo in algos:
        n = steps_of(algo, args)
        mine = [s for s in args.sets if "." not in s.partition("=")[0] or s.startswith(f"{algo}.")]
        plans += plan_runs(datasets, [algo], args.seeds, root / "offbench", sets=[f"eval_every={n}", *mine], steps=n,
                           eval_episodes=args.eval_episodes)

    seen: set[tuple[str, str, int]] = set()

    def progress(event: str, label: str, step: int, total: int, score: float | None) -> None:
        shown = event in ("done", "failed") or (event == "progress" and total and step % max(1, total // 5) == 0)
        if shown and (event, label, step) not in seen:
            seen.add((event, label, step))
            log(f"offbench {label}: {event} {step}/{total}" + (f" score {score:.1f}" if score is not None else ""))

    cores = os.cpu_count() or 1
    threads = max(1, cores // args.workers) if args.device == "cpu" else 1
    t0 = time.perf_counter()
    outcome = run_plans(plans, device=args.device, workers=args.workers, report=progress, check=False)
    wall = {"offbench": time.perf_counter() - t0 if len(outcome.skipped) < len(plans) else 0.0}
    failures = [f"offbench {plan.label}: {msg}" for plan, msg in outcome.failed]

    jobs = []
    for plan in plans:
        out = root / "d3rlpy" / plan.dataset / plan.algo / plan.config_hash / f"seed-{plan.seed}.json"
        npz, facts = exported[plan.dataset]
        jobs.append((d3rlpy_job(plan, npz, facts["max_episode_length"], args, threads), out))
    t0 = time.perf_counter()
    todo = sum(not out.is_file() for _, out in jobs)
    failures += [f"d3rlpy {f}" for f in run_d3rlpy(jobs, args.d3rlpy_python, args.workers, threads)]
    wall["d3rlpy"] = time.perf_counter() - t0 if todo else 0.0

    cells, unmatched = [], {}
    for name in datasets:
        spec = cache.run_spec(name)
        for algo in algos:
            cell_plans = [p for p in plans if p.dataset == name and p.algo == algo]
            ours = [s for s in (read_json(p.dir.summary) for p in cell_plans) if s]
            theirs = [json.loads(out.read_text()) for (job, out), p in zip(jobs, plans)
                      if p.dataset == name and p.algo == algo and out.is_file()]
            for r in theirs:  # the union over datasets, in order
                unmatched[algo] = list(dict.fromkeys([*unmatched.get(algo, []), *r.get("unmatched", [])]))
            ours_scores = [s["score_last"] for s in ours]
            theirs_scores = [spec.normalize(float(np.mean(r["returns"]))) for r in theirs]
            cell = {"dataset": name, "algo": algo, "steps": steps_of(algo, args), "n_ours": len(ours),
                    "n_theirs": len(theirs), "ours_text": f"{len(ours)} runs", "theirs_text": f"{len(theirs)} runs",
                    "stats": compare(ours_scores, theirs_scores) if ours and theirs else None,
                    "return_ours": float(np.mean([s["return_last"] for s in ours])) if ours else math.nan,
                    "return_theirs": float(np.mean([np.mean(r["returns"]) for r in theirs])) if theirs else math.nan,
                    "ours": ours_scores, "theirs": theirs_scores}
            cells.append(cell)
    specs = {n: cache.run_spec(n) for n in datasets}
    meta = {"command": shown_command(argv if argv is not None else sys.argv[1:]),
            "date": dt.date.today().isoformat(), "versions": versions, "device": args.device,
            "steps": {a: steps_of(a, args) for a in algos}, "seeds": args.seeds, "eval_episodes": args.eval_episodes,
            "envs": ", ".join(sorted({f"{s.env} (at most {s.max_episode_steps} steps)" for s in specs.values()})),
            "dt_targets": ", ".join(f"{n} {s.target_returns[0]:g}" for n, s in specs.items()),
            "wall": wall, "workers": args.workers, "threads": threads, "algos": algos,
            "unmatched": unmatched, "data": {n: f for n, (_, f) in exported.items()}, "failures": failures}
    text = report(cells, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    (root / "parity.json").write_text(json.dumps({"meta": meta, "cells": cells}, indent=1, default=str))
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
