"""What a launcher tells its caller: progress events per run, the outcome of a set of runs, and
an estimate of the time left."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from offbench.checkpoints import checkpoint_step
from offbench.errors import OffbenchError
from offbench.results import last_progress, read_metrics
from offbench.train import RunPlan


@dataclass
class RunOutcome:
    """What happened to each planned run."""

    finished: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[RunPlan, str]] = field(default_factory=list)
    submitted: list[RunPlan] = field(default_factory=list)  # handed to a cluster that runs them on its own


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


def event_of(plan: RunPlan, step: int) -> str:
    """"eval" at a step that ends with an evaluation (before the last), else "progress"."""
    every, total = plan.config.eval_every, plan.config.steps
    return "eval" if every and step % every == 0 and 0 < step < total else "progress"


def report_start(group: list[RunPlan], report: Reporter) -> None:
    """"start", "resume" from the checkpoint's step, or "restart" for a run that stopped before its
    first checkpoint (it begins again from step 0)."""
    for plan in group:
        step = checkpoint_step(plan.dir.checkpoint)
        event = "resume" if step else "restart" if plan.dir.metrics.is_file() else "start"
        report(event, plan.label, step, plan.config.steps, None)


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


def quiet_seconds() -> float:
    """The longest a non-terminal ``offbench run`` stays silent about a training run:
    ``OFFBENCH_PROGRESS_SECONDS``, default 60."""
    return float(os.environ.get("OFFBENCH_PROGRESS_SECONDS") or 60)


class RecordProgress:
    """Progress of runs that execute elsewhere (Ray or Slurm tasks), read from their metrics logs
    at most every ``every`` seconds (default: 10, or :func:`quiet_seconds` if shorter) and
    reported as "progress" events."""

    def __init__(self, groups: list[list[RunPlan]], report: Reporter, every: float | None = None) -> None:
        self.plans = [plan for group in groups for plan in group]
        self.report, self.every = report, every if every is not None else min(10.0, quiet_seconds())
        self.seen: dict[str, int] = {}
        self.last = time.monotonic()

    def poll(self) -> None:
        if time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        for plan in self.plans:
            if plan.dir.summary.exists():
                continue
            step, score = last_progress(read_metrics(plan.dir.metrics))
            if step > self.seen.get(plan.label, 0):
                self.seen[plan.label] = step
                self.report("progress", plan.label, step, plan.config.steps, score)
