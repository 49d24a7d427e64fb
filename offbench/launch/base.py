"""The seam between planning and execution: a :class:`Launcher` runs groups of seeds somewhere and
tells a :class:`Sink` what happened to each. Today's backend is :mod:`offbench.launch.local`; a
cluster backend is one more module implementing the protocol."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from offbench.launch.events import Reporter, RunOutcome
from offbench.paths import write_json_atomic
from offbench.train import RunPlan


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
