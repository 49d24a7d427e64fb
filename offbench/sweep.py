"""Return conditioning from real rollouts: evaluate trained return-conditioned policies (DT) at a
grid of target returns, for the DT paper's Figure 4 (``offbench evaluate --sweep``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from offbench.algos import get_algorithm
from offbench.cores import CoreShare
from offbench.data import cache
from offbench.errors import OffbenchError, UsageError
from offbench.evaluate import rollout
from offbench.paths import write_text_atomic
from offbench.results import RunDir, load_runs, read_json
from offbench.checkpoints import load_checkpoint
from offbench.devices import resolve_device
from offbench.train import hash_seed


def target_grid(best_return: float, low: float, points: int, factor: float = 1.5) -> list[float]:
    """``points`` targets from ``low`` to ``factor`` x the best return in the dataset."""
    return [float(t) for t in np.linspace(low, factor * best_return, points)]


def sweep(results: Path, dataset: str, algo: str, targets: list[float] | None = None, points: int = 10,
          episodes: int = 10, device: str = "auto", threads: int | None = None) -> list[Path]:
    """Evaluate every finished run of (``dataset``, ``algo``) at each target; write ``sweep.jsonl``
    in each run directory (atomically); return those paths. ``threads``: torch threads (default:
    the CPU cores free at start)."""
    with CoreShare(threads):
        return _sweep(results, dataset, algo, targets, points, episodes, device)


def _sweep(results: Path, dataset: str, algo: str, targets: list[float] | None, points: int, episodes: int,
           device: str) -> list[Path]:
    runs, _ = load_runs(results)
    runs = runs[(runs["dataset"] == dataset) & (runs["algo"] == algo)]
    if runs.empty:
        raise OffbenchError(f"no finished {algo} runs on {dataset} under {results}; train some with 'offbench run'")
    cls = get_algorithm(algo)
    if not cls.return_conditioned:
        raise UsageError(f"--sweep needs a return-conditioned algorithm (such as dt); {algo} is not")
    spec, data = cache.run_spec(dataset), cache.load(dataset)
    returns = data.episode_returns
    targets = targets or target_grid(float(returns.max()), min(0.0, float(returns.min())), points)
    dev = resolve_device(device)
    run_seeds = [int(seed) for seed in runs["seed"]]
    dirs = [RunDir.of(results, r.dataset, r.algo, r.config_hash, r.seed) for r in runs.itertuples()]
    written = []
    for config_id in dict.fromkeys(runs["config_hash"]):  # the seeds of one config evaluated together
        group = [i for i, h in enumerate(runs["config_hash"]) if h == config_id]
        config, states = read_json(dirs[group[0]].config), []
        for i in group:
            if config is None or not dirs[i].checkpoint.is_file():
                raise OffbenchError(f"{dirs[i].root}: no config.json or checkpoint.pt to evaluate")
            states.append(load_checkpoint(dirs[i].checkpoint)["algo"])
        model = cls.for_data(cls.Config.from_record(config["config"]), data, spec, dev, [run_seeds[i] for i in group])
        model.load_seed_states(states)
        lines: list[list[str]] = [[] for _ in group]
        for j, target in enumerate(targets):
            seeds = [hash_seed(run_seeds[i], 1_000_003, j) for i in group]
            gens = [torch.Generator().manual_seed(s) for s in seeds]
            evs = rollout(model.policy(target, gens), spec, episodes, [s % 2**31 for s in seeds], target_return=target)
            for k, ev in enumerate(evs):
                lines[k].append(json.dumps({**ev.as_record(spec), "step": int(runs["steps"].iloc[group[k]]),
                                            "dataset_best_return": float(returns.max())}))
        for k, i in enumerate(group):
            write_text_atomic(dirs[i].sweep, "\n".join(lines[k]) + "\n")
            written.append(dirs[i].sweep)
    return written
