"""Return conditioning from real rollouts: evaluate trained return-conditioned policies (DT) at a
grid of target returns, for the DT paper's Figure 4 (``offbench evaluate --sweep``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from offbench.algos.base import get_algorithm
from offbench.data import cache
from offbench.errors import OffbenchError, UsageError
from offbench.evaluate import rollout
from offbench.paths import write_text_atomic
from offbench.results import RunDir, load_runs, read_json
from offbench.train import hash_seed, resolve_device


def target_grid(best_return: float, low: float, points: int, factor: float = 1.5) -> list[float]:
    """``points`` targets from ``low`` to ``factor`` x the best return in the dataset."""
    return [float(t) for t in np.linspace(low, factor * best_return, points)]


def sweep(results: Path, dataset: str, algo: str, targets: list[float] | None = None, points: int = 10,
          episodes: int = 10, device: str = "auto") -> list[Path]:
    """Evaluate every finished run of (``dataset``, ``algo``) at each target; write ``sweep.jsonl``
    in each run directory (atomically); return those paths."""
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
    written = []
    for r in runs.itertuples():
        run = RunDir.of(results, r.dataset, r.algo, r.config_hash, r.seed)
        config = read_json(run.config)
        if config is None or not run.checkpoint.is_file():
            raise OffbenchError(f"{run.root}: no config.json or checkpoint.pt to evaluate")
        model = cls(cls.Config(**config["config"]), data, spec, dev)
        model.load_state_dict(torch.load(run.checkpoint, map_location=dev, weights_only=False)["algo"])
        lines = []
        for j, target in enumerate(targets):
            seed = hash_seed(int(r.seed), 1_000_003, j)
            gen = torch.Generator().manual_seed(seed)
            ev = rollout(model.policy(target, gen), spec, episodes, seed=seed % 2**31, target_return=target)
            lines.append(json.dumps({**ev.as_record(spec), "step": int(r.steps), "dataset_best_return": float(returns.max())}))
        write_text_atomic(run.sweep, "\n".join(lines) + "\n")
        written.append(run.sweep)
    return written
