"""The seam between planning and execution: a :class:`Launcher` runs groups of seeds somewhere and
tells a :class:`Sink` what happened to each. Today's backend is :mod:`offbench.launch.local`; a
cluster backend is one more module implementing the protocol."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from offbench.launch.events import Reporter, RunOutcome
from offbench.paths import write_json_atomic
from offbench.train import RunPlan, execute_seeds


@dataclass
class Sink:
    """Where a launcher reports: progress events, finished groups (their summaries, in the group's
    order) and failed groups (one message for the group)."""

    outcome: RunOutcome
    report: Reporter

    def finished(self, group: list[RunPlan], summaries: list[dict[str, Any]]) -> None:
        for plan, summary in zip(group, summaries):
            self.outcome.finished.append(summary)
            self.report("done", plan.label, summary["steps"], summary["steps"], summary["score_last"])

    def submitted(self, group: list[RunPlan]) -> None:
        """The group runs on its own (a detached cluster job); its records will say how it went."""
        for plan in group:
            self.outcome.submitted.append(plan)
            self.report("submitted", plan.label, 0, plan.config.steps, None)

    def failed(self, group: list[RunPlan], message: str) -> None:
        for plan in group:
            self.outcome.failed.append((plan, message))
            if plan.dir.root.is_dir():  # for `offbench status`, from any launcher
                write_json_atomic(plan.dir.failed, {"error": message, "time": time.time()})
            self.report("failed", plan.label, 0, 0, None)


class Launcher(Protocol):
    """Runs seed groups (each a list of plans that train as one model) to completion."""

    def parts(self, runs: int, device: torch.device) -> int:
        """How many groups to make of ``runs`` runs (for a CPU: enough to keep every worker busy)."""
        ...

    def run(self, groups: list[list[RunPlan]], device: torch.device, sink: Sink) -> None:
        """Run every group, reporting to ``sink``; Ctrl-C stops them all (checkpoints are kept)."""
        ...


# -- what the cluster backends (Ray, Slurm) share --------------------------------------------------
def cluster_parts(runs: int, device: torch.device, gpus_per_job: float) -> int:
    """How many tasks a cluster launcher makes of ``runs`` runs: every run its own task on CPUs
    (the tasks run in parallel on the cluster); on GPUs the seeds of a config train as one model."""
    return runs if device.type == "cpu" and not gpus_per_job else 1


def task_device(device: torch.device, gpus_per_job: float) -> str:
    """The device a cluster task computes on: CUDA where it asks for GPUs (the submitting machine
    may have none), else the command's."""
    return "cuda" if gpus_per_job else device.type


def run_seed_group(plans: list[RunPlan], device: str, threads: int, home: str | None) -> list[dict[str, Any]]:
    """What one cluster task runs: a seed group, to its summaries, with ``threads`` torch threads
    and the submitting command's ``OFFBENCH_HOME`` (so it finds the datasets fetched there on a
    shared filesystem). It never downloads: the command fetched the data once."""
    if home:
        os.environ["OFFBENCH_HOME"] = home
    torch.set_num_threads(threads)
    return execute_seeds(plans, torch.device(device), fetch_missing=False)
