"""Plan every (dataset, algorithm, seed) combination and run them concurrently on local workers."""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from offbench.algos import get_algorithm
from offbench.cores import CoreShare, free_cores, threads_per_job
from offbench.data import cache
from offbench.data.spec import get_spec, resolve_names
from offbench.errors import OffbenchError, UsageError
from offbench.paths import ensure_writable
from offbench.checkpoints import checkpoint_step
from offbench.devices import resolve_device
from offbench.results import read_json
from offbench.train import RunPlan, execute_seeds


def split_overrides(sets: list[str], algos: list[str]) -> dict[str, dict[str, str]]:
    """``key=value`` applies to every algorithm, ``algo.key=value`` to one."""
    per_algo: dict[str, dict[str, str]] = {a: {} for a in algos}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got '{item}'")
        target, dot, name = key.partition(".")
        if dot and target in per_algo:
            per_algo[target][name] = value
        elif dot:
            raise UsageError(f"--set {item}: '{target}' is not one of the selected algorithms ({', '.join(algos)})")
        else:
            for a in algos:
                per_algo[a][key] = value
    return per_algo


def plan_runs(datasets: list[str], algos: list[str], seeds: int, results: Path, sets: list[str] | None = None,
              steps: int | None = None, eval_episodes: int | None = None) -> list[RunPlan]:
    """Every (dataset, algorithm, seed) combination with its resolved config. Validates all names
    and ``--set`` keys before anything runs."""
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    if steps is not None and steps < 0:
        raise UsageError(f"--steps must be >= 0, got {steps}")
    names = resolve_names(datasets)
    classes = {a: get_algorithm(a) for a in algos}
    overrides = split_overrides(sets or [], algos)
    plans = []
    for name in names:
        spec = get_spec(name)
        for algo, cls in classes.items():
            budget = {k: str(v) for k, v in (("steps", steps), ("eval_episodes", eval_episodes)) if v is not None}
            for key in set(budget) & set(overrides[algo]):
                raise UsageError(f"--{key.replace('_', '-')} {budget[key]} and --set {key}={overrides[algo][key]} both "
                                 f"set {key}; give one")
            cfg = cls.Config.resolve(spec, {**budget, **overrides[algo]})
            plans.extend(RunPlan(name, algo, cfg, seed, results) for seed in range(seeds))
    return plans


@dataclass
class RunOutcome:
    """What happened to each planned run."""

    finished: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[RunPlan, str]] = field(default_factory=list)


class RunsFailed(OffbenchError):
    """Some runs failed (``outcome`` says which and why); the others finished and are kept."""

    def __init__(self, outcome: RunOutcome) -> None:
        plan, why = outcome.failed[0]
        total = len(outcome.failed) + len(outcome.finished) + len(outcome.skipped)
        super().__init__(f"{len(outcome.failed)} of {total} runs failed (first: {plan.label}: {why}); "
                         "finished runs are kept, and running the same plans again resumes the others")
        self.outcome = outcome


#: (event, label, step, total, score); events: start, resume, restart, progress, eval, done, failed
Reporter = Callable[[str, str, int, int, "float | None"], None]


class TimeLeft:
    """Time left for a set of runs, from the speed of the steps done so far (fed the reporter's
    events; seeds trained together count one step each)."""

    def __init__(self, plans: list[RunPlan], warmup: float = 60.0) -> None:
        self.left = {p.label: p.config.steps for p in plans if not p.dir.finished()}
        self.at: dict[str, int] = {}
        self.done = 0
        self.warmup, self.since = warmup, time.monotonic()

    def update(self, event: str, label: str, step: int, total: int) -> None:
        if event in ("start", "resume", "restart"):
            self.at[label], self.left[label] = step, total - step
        elif label in self.at and step > self.at[label]:
            self.done += step - self.at[label]
            self.left[label] -= step - self.at[label]
            self.at[label] = step

    def seconds(self) -> float | None:
        """Seconds left at the speed so far; None during the first ``warmup`` seconds."""
        elapsed = time.monotonic() - self.since
        if elapsed < self.warmup or not self.done:
            return None
        return sum(self.left.values()) / (self.done / elapsed)


_events: Any = None  # in a worker: the queue that carries progress events to the parent


_share: CoreShare | None = None  # in a worker: its share of the cores, held for the worker's life


def _worker_init(threads: int | None, start: int, events: Any) -> None:
    global _events, _share
    _events = events
    _share = CoreShare(threads, start).__enter__()
    atexit.register(_share.__exit__)
    parent = os.getppid()

    def exit_with_parent() -> None:  # a worker never outlives the command that started it
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True).start()


def _worker(plans: list[RunPlan], device: str) -> list[dict[str, Any]]:
    def progress(i: int, step: int, total: int, score: float | None) -> None:
        if _share is not None:
            _share.update()
        _events.put((_event(plans[i], step), plans[i].label, step, total, score))

    return execute_seeds(plans, device=device, progress=progress)


def _event(plan: RunPlan, step: int) -> str:
    """"eval" at a step that ends with an evaluation (before the last), else "progress"."""
    every, total = plan.config.eval_every, plan.config.steps
    return "eval" if every and step % every == 0 and 0 < step < total else "progress"


def _report_start(group: list[RunPlan], report: Reporter) -> None:
    """"start", "resume" from the checkpoint's step, or "restart" for a run that stopped before its
    first checkpoint (it begins again from step 0)."""
    for plan in group:
        step = checkpoint_step(plan.dir.checkpoint)
        event = "resume" if step else "restart" if plan.dir.config.is_file() else "start"
        report(event, plan.label, step, plan.config.steps, None)


def default_workers(n_runs: int, device: torch.device, free: int) -> int:
    """CPU: one process per ``free`` core (each single-threaded); CUDA: a few processes share the GPU."""
    return max(1, min(n_runs, free if device.type == "cpu" else 4))


def group_seeds(plans: list[RunPlan], parts: int = 1, most: int | None = None, cpu: bool = False) -> list[list[RunPlan]]:
    """Seeds that train as one model: runs of one (dataset, algorithm, config) whose checkpoints
    are at the same step (a seed-batched algorithm; others run alone), at most ``most`` per group
    (default: all; on a ``cpu``, the algorithm's ``cpu_seeds_together``). The largest groups are
    then halved until there are ``parts`` groups (to keep ``parts`` CPU workers busy) or none can
    be split."""
    groups: dict[tuple, list[RunPlan]] = {}
    for plan in plans:
        cls = get_algorithm(plan.algo)
        key = (plan.dataset, plan.algo, plan.config_hash, checkpoint_step(plan.dir.checkpoint)) if cls.seed_batched else (plan.label,)
        groups.setdefault(key, []).append(plan)
    out = []
    for g in groups.values():
        size = most or (get_algorithm(g[0].algo).cpu_seeds_together if cpu else None) or len(g)
        out += [g[i : i + size] for i in range(0, len(g), size)]
    while len(out) < parts and max(len(g) for g in out) > 1:
        big = max(out, key=len)
        out.remove(big)
        out += [big[: len(big) // 2], big[len(big) // 2 :]]
    return out


def run_plans(plans: list[RunPlan], device: str = "auto", workers: int | None = None,
              report: Reporter | None = None, seeds_together: int | None = None,
              threads: int | None = None, check: bool = True) -> RunOutcome:
    """Run all plans, skipping finished ones. The seeds of one (dataset, algorithm, config) train
    together as one model (at most ``seeds_together`` at once; default: all on CUDA; on a CPU,
    split so that every worker has work, and apart for algorithms that gain nothing there); each
    worker process runs one such group at a time, with ``threads`` torch threads (default: the
    CPU cores free when the runs start, shared evenly between the workers). When runs fail,
    :class:`RunsFailed` is raised after the others have finished (``check=False``: returned in
    ``outcome.failed`` instead)."""
    outcome = _run_plans(plans, device, workers, report, seeds_together, threads)
    if check and outcome.failed:
        raise RunsFailed(outcome)
    return outcome


def _run_plans(plans: list[RunPlan], device: str, workers: int | None, report: Reporter | None,
               seeds_together: int | None, threads: int | None) -> RunOutcome:
    outcome = RunOutcome()
    todo = []
    for plan in plans:
        if plan.dir.finished():
            outcome.skipped.append(read_json(plan.dir.summary))
        else:
            todo.append(plan)
    if not todo:
        return outcome
    ensure_writable(plans[0].results)
    for name in dict.fromkeys(p.dataset for p in todo):
        cache.fetch(name)  # once, here, not in every worker
    dev = resolve_device(device)
    free = free_cores() if workers is None or threads is None else 0
    n = workers or default_workers(len(todo), dev, free)
    groups = group_seeds(todo, parts=n if dev.type == "cpu" else 1, most=seeds_together, cpu=dev.type == "cpu")
    n = min(n, len(groups))
    report = report or (lambda *a: None)

    def finished(group: list[RunPlan], summaries: list[dict[str, Any]]) -> None:
        for plan, summary in zip(group, summaries):  # execute_seeds answers in the group's order
            outcome.finished.append(summary)
            report("done", plan.label, summary["steps"], summary["steps"], summary["score_last"])

    def failed(group: list[RunPlan], message: str) -> None:
        for plan in group:
            outcome.failed.append((plan, message))
            report("failed", plan.label, 0, 0, None)

    start = threads_per_job(n, threads, free)
    if n == 1:
        with CoreShare(threads, start) as share:
            _run_in_process(groups, device, report, finished, failed, share)
        return outcome
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init, initargs=(threads, start, events)) as pool:
        futures: dict[Future, list[RunPlan]] = {}
        for group in groups:
            futures[pool.submit(_worker, group, device)] = group
            _report_start(group, report)
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(events, report)
                for fut in done:
                    group = futures[fut]
                    try:
                        summaries = fut.result()
                    except BrokenProcessPool:  # a worker died: killed, out of memory, or never started
                        failed(group, "a worker process stopped before its runs finished; 'offbench run' resumes them "
                                      "(from a script, call run_plans under if __name__ == '__main__': workers "
                                      "import the script again)")
                        continue
                    except Exception as e:  # noqa: BLE001  (a failed run must not stop the others)
                        failed(group, f"{type(e).__name__}: {e}")
                        continue
                    finished(group, summaries)
        except KeyboardInterrupt:
            workers_ = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in workers_:  # checkpoints are atomic, so stopping mid-step loses nothing
                proc.terminate()
            raise
    return outcome


def _run_in_process(groups: list[list[RunPlan]], device: str, report: Reporter,
                    finished: Callable[[list[RunPlan], list[dict[str, Any]]], None],
                    failed: Callable[[list[RunPlan], str], None], share: CoreShare) -> None:
    """One worker: the groups one after another in this process (no start-up cost, works anywhere)."""
    for group in groups:
        _report_start(group, report)

        def progress(i: int, step: int, total: int, score: float | None, group: list[RunPlan] = group) -> None:
            share.update()
            report(_event(group[i], step), group[i].label, step, total, score)

        try:
            summaries = execute_seeds(group, device, progress)
        except OffbenchError as e:
            failed(group, str(e))
            continue
        finished(group, summaries)


def _drain(events: Any, report: Reporter) -> None:
    deadline = time.monotonic() + 0.1
    while time.monotonic() < deadline:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return
        report(*event)
