"""The one training loop: budget, evaluation schedule, checkpoints, resume, run record."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from offbench import __version__, trace
from offbench.algos.base import AlgoConfig, Algorithm
from offbench.algos import get_algorithm
from offbench.batches import seed_batches
from offbench.checkpoints import previous, restore_checkpoints, save_checkpoints
from offbench.data import cache
from offbench.data.spec import DatasetSpec
from offbench.errors import OffbenchError
from offbench.devices import resolve_device
from offbench.evaluate import rollout
from offbench.loggers import make_loggers
from offbench.paths import remove_temporaries, write_json_atomic, write_text_atomic
from offbench.results import RunDir, config_hash, read_json, read_metrics
from offbench.runlock import RunHeld, clear_if_stale, run_lock

Progress = Callable[[int, int, "float | None"], None]  # (step, total, last score)


@dataclass(frozen=True)
class RunPlan:
    """One (dataset, algorithm, resolved config, seed) combination and where it is recorded;
    ``spec`` is the dataset's registry entry (its reference returns filled in from the data once
    fetched, :func:`offbench.data.cache.run_spec`)."""

    dataset: str
    algo: str
    config: AlgoConfig
    seed: int
    results: Path
    spec: DatasetSpec
    #: Metric streams beside metrics.jsonl (``tensorboard``, ``wandb``: :mod:`offbench.loggers`);
    #: not part of the run's identity.
    loggers: tuple[str, ...] = ()
    #: When another live process holds the run: wait for it to end (then the run is what it left:
    #: finished, or resumed here), or fail at once. Not part of the run's identity.
    wait: bool = True

    def with_run_spec(self) -> RunPlan:
        """This plan with reference returns known, read from the cached data where the registry
        has none, and the evaluation environment the data name where the registry says so
        (``env_from_data``); once, before the run, not at every evaluation."""
        known = self.spec.ref_min_return is not None and self.spec.ref_max_return is not None
        if known and not self.spec.params.get("env_from_data"):
            return self
        return dataclasses.replace(self, spec=cache.run_spec(self.dataset))

    @property
    def config_hash(self) -> str:
        return config_hash(self.algo, self.dataset, self.config.to_dict())

    @property
    def dir(self) -> RunDir:
        return RunDir.of(self.results, self.dataset, self.algo, self.config_hash, self.seed)

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.algo}/seed-{self.seed}"


def evaluate(algo: Algorithm, plans: list[RunPlan], step: int) -> list[dict[str, Any]]:
    """Evaluate every seed at every default target (return-conditioned) or once, all seeds' episodes
    stepped together; seed ``i``'s episodes and policy randomness are seeded by (its seed, step).
    The plans' spec has its reference returns (:meth:`RunPlan.with_run_spec`)."""
    spec = plans[0].spec
    targets = list(spec.target_returns) if algo.return_conditioned else [None]
    per_seed: list[list[dict[str, Any]]] = [[] for _ in plans]
    for j, target in enumerate(targets):
        seeds = [hash_seed(p.seed, step, j) for p in plans]
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        evs = rollout(algo.policy(target, gens), spec, plans[0].config.eval_episodes,
                      [s % 2**31 for s in seeds], target_return=target)
        for results, ev in zip(per_seed, evs):
            results.append(ev.as_record(spec))
    return [{"kind": "eval", "step": step, "score": r[0]["score_mean"], "return": r[0]["return_mean"], "targets": r}
            for r in per_seed]


def hash_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (independent streams per seed, step, target)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def _truncate_log(path: Path, step: int) -> list[dict[str, Any]]:
    """Keep only the log records up to ``step`` (those after the checkpoint are redone)."""
    records = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    return records


def execute(plan: RunPlan, device: torch.device | str = "auto", progress: Progress | None = None,
            checkpoint_seconds: float = 30.0) -> dict[str, Any]:
    """Train and evaluate one run (see :func:`execute_seeds`); return its summary."""
    group_progress = None if progress is None else (lambda i, step, total, score: progress(step, total, score))
    return execute_seeds([plan], device, group_progress, checkpoint_seconds)[0]


#: Seconds between two looks at a run another process holds (``RunPlan.wait``), jittered.
WAIT_SECONDS = 1.0

SeedProgress = Callable[[int, int, int, "float | None"], None]  # (seed index, step, total, last score)


def execute_seeds(plans: list[RunPlan], device: torch.device | str = "auto", progress: SeedProgress | None = None,
                  checkpoint_seconds: float = 30.0, fetch_missing: bool = True) -> list[dict[str, Any]]:
    """Train and evaluate several seeds of one (dataset, algorithm, config) together; resume them
    if interrupted; return their summaries in order.

    A seed-batched algorithm trains all the seeds as one model (each seed's result is what it
    would be alone, up to float rounding); others train one seed here. Each seed keeps its own run
    record. A finished run (its ``summary.json`` exists) is not run again. Training state is
    checkpointed, with the random number generators, at every evaluation and at least every
    ``checkpoint_seconds``, always between two steps, so a run killed at any moment resumes from
    its last checkpoint and ends with the same metrics as if it had never stopped. ``device``: a
    ``torch.device``, or a name for :func:`~offbench.devices.resolve_device`. ``fetch_missing``:
    fetch a dataset that is not cached (a task on a cluster node is not allowed to: its launcher
    fetched the data once, and a node that does not see it fails naming the path). A run another
    live process holds is waited for (``RunPlan.wait``; else an error), then taken as it was left:
    finished, or resumed here.
    """
    keys = {(p.dataset, p.algo, p.config_hash, p.results) for p in plans}
    if len(keys) != 1 or len({p.seed for p in plans}) != len(plans):
        raise ValueError("execute_seeds takes distinct seeds of one dataset, algorithm and config")
    summaries = {i: read_json(plan.dir.summary) for i, plan in enumerate(plans)}
    todo = [i for i, done in summaries.items() if done is None]
    for plan in (plans[i] for i in summaries if i not in todo):
        tidy_finished(plan)
    for plan in (plans[i] for i in todo):
        plan.dir.root.mkdir(parents=True, exist_ok=True)
    waited = False
    while todo:
        try:
            with contextlib.ExitStack() as stack:
                for i in todo:  # in seed order in every process: of two waiting on each other, one gets all
                    stack.enter_context(run_lock(plans[i].dir.lock, plans[i].label))
                    remove_temporaries(plans[i].dir.root)  # an interrupted atomic write's; this process writes here now
                summaries.update({i: read_json(plans[i].dir.summary) for i in todo})  # another process may have finished some
                left = [i for i in todo if summaries[i] is None]
                if left:
                    def seed_progress(k: int, step: int, total: int, score: float | None) -> None:
                        if progress:
                            progress(left[k], step, total, score)

                    try:
                        done_now = _execute([plans[i].with_run_spec() for i in left], resolve_device(device),
                                            seed_progress, checkpoint_seconds, fetch_missing)
                    except MemoryError:
                        raise OffbenchError(f"{plans[left[0]].label}: out of memory; free memory or run fewer "
                                            "--workers, then run the same command to resume") from None
                    except RuntimeError as e:  # a thread that cannot start: memory or a process limit
                        if "can't start new thread" not in str(e):
                            raise
                        raise OffbenchError(f"{plans[left[0]].label}: cannot start a thread (out of memory or over "
                                            "a process limit); free some, then run the same command to resume") from None
                    summaries.update(zip(left, done_now))
            break
        except RunHeld as held:
            if not plans[0].wait:
                raise
            if not waited:
                print(f"waiting: {held.label} is being run by pid {held.holder.pid} on {held.where}", file=sys.stderr,
                      flush=True)
                waited = True
            time.sleep(WAIT_SECONDS * (0.5 + random.random()))  # jittered: two waiting processes do not pace together
            summaries.update({i: read_json(plans[i].dir.summary) for i in todo})
            todo = [i for i in todo if summaries[i] is None]
    return [summaries[i] for i in range(len(plans))]


def tidy_finished(plan: RunPlan) -> None:
    """Remove what an attempt killed after writing a run's summary left behind: its stale lock
    and temporary files (nothing while a live process holds the lock)."""
    if clear_if_stale(plan.dir.lock):
        remove_temporaries(plan.dir.root)


def record_config(plan: RunPlan) -> None:
    """Write the run's ``config.json`` unless it is there (at dispatch, so that a waiting run is
    visible in its records, and again at the start of training)."""
    if not plan.dir.config.is_file():
        plan.dir.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(plan.dir.config, {"dataset": plan.dataset, "algo": plan.algo, "seed": plan.seed,
                                            "config_hash": plan.config_hash, "config": plan.config.to_dict(),
                                            "offbench_version": __version__})


def _execute(plans: list[RunPlan], dev: torch.device, progress: SeedProgress,
             checkpoint_seconds: float, fetch_missing: bool = True) -> list[dict[str, Any]]:
    plan0, cfg = plans[0], plans[0].config
    for plan in plans:
        record_config(plan)
        plan.dir.failed.unlink(missing_ok=True)  # tried again: no longer a failure
    rngs = [np.random.default_rng(p.seed) for p in plans]
    data = cache.load(plan0.dataset, fetch_missing)
    spec = plan0.spec
    cls = get_algorithm(plan0.algo)
    most = cls.most_seeds(cpu=False) or len(plans)
    if len(plans) > most:  # more seeds than one instance trains: in turn
        return [summary for k in range(0, len(plans), most)
                for summary in _execute(plans[k : k + most], dev,
                                        lambda j, *a, k=k: progress(k + j, *a), checkpoint_seconds, fetch_missing)]
    algo = cls.for_data(cfg, data, spec, dev, [p.seed for p in plans])
    steps = cfg.steps if algo.trainable else 0
    sampler = seed_batches(algo, [algo.make_sampler(data, rng) for rng in rngs]) if steps else None
    checkpoints = [p.dir.checkpoint for p in plans]
    start, before = restore_checkpoints(checkpoints, algo, rngs)
    run = ",".join(p.label for p in plans)
    trace.mark(run, "train", "begin", start)
    evals = [[r for r in _truncate_log(p.dir.metrics, start) if r.get("kind") == "eval"] for p in plans]
    streams = [make_loggers(p.loggers, p.dir.root, f"{p.config_hash}-{p.seed}", p.label,
                            f"{p.dataset}/{p.algo}/{p.config_hash}", {**cfg.to_dict(), "seed": p.seed}, start)
               for p in plans]
    log_every = max(1, min(steps // 50, 1000)) if steps else 1
    t0 = time.perf_counter()
    elapsed = lambda: before + time.perf_counter() - t0  # noqa: E731  (over every part of an interrupted run)
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(open(p.dir.metrics, "a")) for p in plans]
        for stream in (s for per_run in streams for s in per_run):
            stack.callback(stream.close)

        def record(i: int, entry: dict[str, Any]) -> None:
            logs[i].write(json.dumps(entry) + "\n")
            logs[i].flush()
            for stream in streams[i]:
                stream.log(entry)

        def evaluate_all(step: int) -> None:
            for i, entry in enumerate(evaluate(algo, plans, step)):
                evals[i].append(entry)
                record(i, entry)

        last_save = time.monotonic()
        for step in range(start + 1, steps + 1):
            batch = sampler.sample()
            metrics = algo.update(batch)
            if step % log_every == 0:
                values = {k: torch.as_tensor(v).detach().reshape(-1).tolist() for k, v in metrics.items()}
                for i in range(len(plans)):
                    record(i, {"kind": "train", "step": step, **{k: float(v[i]) for k, v in values.items()}})
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == steps:
                with trace.phase(run, "eval", step):
                    evaluate_all(step)
                with trace.phase(run, "checkpoint", step):
                    save_checkpoints(checkpoints, algo, step, rngs, elapsed())
                last_save = time.monotonic()
            elif time.monotonic() - last_save > checkpoint_seconds:
                with trace.phase(run, "checkpoint", step):
                    save_checkpoints(checkpoints, algo, step, rngs, elapsed())
                last_save = time.monotonic()
            for i in range(len(plans)):
                progress(i, step, steps, evals[i][-1]["score"] if evals[i] else None)
        if steps == 0 and not evals[0]:
            evaluate_all(0)
    seconds = round(elapsed(), 3)
    summaries = []
    for i, plan in enumerate(plans):
        last, best = evals[i][-1], max(evals[i], key=lambda e: e["score"])
        summary = {
            "dataset": plan.dataset, "algo": plan.algo, "config_hash": plan.config_hash, "seed": plan.seed,
            "steps": steps, "eval_episodes": cfg.eval_episodes, "score_name": spec.score,
            "score_last": last["score"], "score_best": best["score"], "best_step": best["step"],
            "return_last": last["return"], "return_best": best["return"],
            "success_last": last["targets"][0].get("success_rate"),  # where the environment reports success
            "targets_last": last["targets"], "device": str(dev), "seeds_together": len(plans),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "train_seconds": seconds, "threads": torch.get_num_threads(), "offbench_version": __version__,
        }
        with trace.phase(plan.label, "summary", steps):
            write_json_atomic(plan.dir.summary, summary)
        previous(plan.dir.checkpoint).unlink(missing_ok=True)  # finished: the latest checkpoint is enough
        progress(i, steps, steps, summary["score_last"])
        summaries.append(summary)
    return summaries
