"""The one training loop: budget, evaluation schedule, checkpoints, resume, run record."""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from offbench import __version__
from offbench.algos.base import AlgoConfig, Algorithm, get_algorithm
from offbench.data import cache
from offbench.errors import OffbenchError, UsageError
from offbench.evaluate import rollout
from offbench.paths import atomic_path, write_json_atomic, write_text_atomic
from offbench.results import RunDir, config_hash, read_json, read_metrics

Progress = Callable[[int, int, "float | None"], None]  # (step, total, last score)


@dataclass(frozen=True)
class RunPlan:
    """One (dataset, algorithm, resolved config, seed) combination and where it is recorded."""

    dataset: str
    algo: str
    config: AlgoConfig
    seed: int
    results: Path

    @property
    def config_hash(self) -> str:
        return config_hash(self.algo, self.dataset, self.config.to_dict())

    @property
    def dir(self) -> RunDir:
        return RunDir.of(self.results, self.dataset, self.algo, self.config_hash, self.seed)

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.algo}/seed-{self.seed}"


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; asking for CUDA without it is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here; use --device auto or cpu")
    return dev


def evaluate(algo: Algorithm, plan: RunPlan, step: int) -> dict[str, Any]:
    """Evaluate at every default target (return-conditioned) or once; seeded by (seed, step)."""
    spec = cache.run_spec(plan.dataset)
    targets = list(spec.target_returns) if algo.return_conditioned else [None]
    episodes = plan.config.eval_episodes
    results = []
    for j, target in enumerate(targets):
        gen = torch.Generator().manual_seed(hash_seed(plan.seed, step, j))
        ev = rollout(algo.policy(target, gen), spec, episodes, seed=hash_seed(plan.seed, step, j) % 2**31, target_return=target)
        results.append(ev.as_record(spec))
    primary = results[0]
    return {"kind": "eval", "step": step, "score": primary["score_mean"], "return": primary["return_mean"],
            "targets": results}


def hash_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (independent streams per seed, step, target)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def save_checkpoint(plan: RunPlan, algo: Algorithm, step: int, rng: np.random.Generator) -> None:
    state = {"step": step, "algo": algo.state_dict(), "numpy_rng": rng.bit_generator.state,
             "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    with atomic_path(plan.dir.checkpoint) as tmp:
        torch.save(state, tmp)


def restore_checkpoint(plan: RunPlan, algo: Algorithm, rng: np.random.Generator) -> int:
    """Load the last checkpoint if any; return the step it was taken at (0 without one)."""
    if not plan.dir.checkpoint.is_file():
        return 0
    state = torch.load(plan.dir.checkpoint, map_location=algo.device, weights_only=False)
    algo.load_state_dict(state["algo"])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"])


def _truncate_log(path: Path, step: int) -> list[dict[str, Any]]:
    """Keep only the log records up to ``step`` (those after the checkpoint are redone)."""
    records = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    return records


def execute(plan: RunPlan, device: str = "auto", progress: Progress | None = None,
            checkpoint_seconds: float = 30.0) -> dict[str, Any]:
    """Train and evaluate one run; resume it if interrupted; return its summary.

    A finished run (its ``summary.json`` exists) is not run again. Training state is checkpointed,
    with the random number generators, at every evaluation and at least every
    ``checkpoint_seconds``, always between two steps, so a run killed at any moment resumes from
    its last checkpoint and ends with the same metrics as if it had never stopped.
    """
    run = plan.dir
    done = read_json(run.summary)
    if done is not None:
        return done
    run.root.mkdir(parents=True, exist_ok=True)
    with run_lock(run.root / ".lock", plan.label):
        return _execute(plan, device, progress, checkpoint_seconds)


@contextlib.contextmanager
def run_lock(path: Path, label: str) -> Iterator[None]:
    """Hold an exclusive lock on a run for as long as it executes (released by the OS on exit)."""
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OffbenchError(f"{label} is being run by another offbench process; wait for it or stop it") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _execute(plan: RunPlan, device: str, progress: Progress | None, checkpoint_seconds: float) -> dict[str, Any]:
    run = plan.dir
    done = read_json(run.summary)  # another process may have finished it before we took the lock
    if done is not None:
        return done
    cfg = plan.config
    if not run.config.is_file():
        write_json_atomic(run.config, {"dataset": plan.dataset, "algo": plan.algo, "seed": plan.seed,
                                       "config_hash": plan.config_hash, "config": cfg.to_dict(),
                                       "offbench_version": __version__})
    torch.manual_seed(plan.seed)
    rng = np.random.default_rng(plan.seed)
    dev = resolve_device(device)
    data = cache.load(plan.dataset)
    spec = cache.run_spec(plan.dataset)
    algo = get_algorithm(plan.algo)(cfg, data, spec, dev)
    steps = cfg.steps if algo.trainable else 0
    sampler = algo.make_sampler(data, rng) if steps else None
    start = restore_checkpoint(plan, algo, rng)
    records = _truncate_log(run.metrics, start)
    evals = [r for r in records if r.get("kind") == "eval"]
    log_every = max(1, min(steps // 50, 1000)) if steps else 1
    t0 = time.perf_counter()
    step = start
    with open(run.metrics, "a") as log:
        def record(entry: dict[str, Any]) -> None:
            log.write(json.dumps(entry) + "\n")
            log.flush()

        last_save = time.monotonic()
        for step in range(start + 1, steps + 1):
            metrics = algo.update(sampler.sample())
            if step % log_every == 0:
                record({"kind": "train", "step": step, **{k: float(v) for k, v in metrics.items()}})
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == steps:
                evals.append(evaluate(algo, plan, step))
                record(evals[-1])
                save_checkpoint(plan, algo, step, rng)
                last_save = time.monotonic()
            elif time.monotonic() - last_save > checkpoint_seconds:
                save_checkpoint(plan, algo, step, rng)
                last_save = time.monotonic()
            if progress:
                progress(step, steps, evals[-1]["score"] if evals else None)
        if steps == 0 and not evals:
            evals.append(evaluate(algo, plan, 0))
            record(evals[-1])
    best = max(evals, key=lambda e: e["score"])
    summary = {
        "dataset": plan.dataset, "algo": plan.algo, "config_hash": plan.config_hash, "seed": plan.seed,
        "steps": steps, "eval_episodes": cfg.eval_episodes, "score_name": spec.score,
        "score_last": evals[-1]["score"], "score_best": best["score"], "best_step": best["step"],
        "return_last": evals[-1]["return"], "return_best": best["return"],
        "targets_last": evals[-1]["targets"], "device": str(dev),
        "train_seconds": round(time.perf_counter() - t0, 3), "offbench_version": __version__,
    }
    write_json_atomic(run.summary, summary)
    if progress:
        progress(steps, steps, summary["score_last"])
    return summary
