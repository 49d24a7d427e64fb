"""The Slurm backend, through submitit: one job-array task per seed group, each training its
group with :func:`~offbench.launch.base.run_seed_group` and writing the usual run records, so a
preempted or timed-out task is requeued and resumes from its runs' checkpoints.

``cluster="local"`` runs the same tasks through submitit's local executor (each task its own
process on this machine): for tests, and for trying a Slurm sweep on a laptop. Job logs go to
``<results>/.slurm/<job id>/``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from offbench.errors import OffbenchError, UsageError
from offbench.launch.base import Sink, cluster_parts, run_seed_group, task_device
from offbench.launch.events import RecordProgress, report_start
from offbench.train import RunPlan

INSTALL_HINT = "pip install 'offbench[slurm]'"
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class SlurmOptions:
    """What each Slurm task asks for (``--slurm-*`` options)."""

    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    time_minutes: int = 60
    mem: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # --slurm-opt KEY=VALUE: any other sbatch option
    cluster: str = "slurm"  # or "local": submitit's local executor
    detach: bool = False  # return once submitted (the tasks run on their own)

    def sbatch_parameters(self) -> dict[str, Any]:
        """The options as submitit's ``SlurmExecutor.update_parameters`` takes them."""
        params: dict[str, Any] = {"time": self.time_minutes, "cpus_per_task": self.cpus_per_job,
                                  "job_name": "offbench"}
        if self.partition:
            params["partition"] = self.partition
        if self.gpus_per_job:
            params["gpus_per_node"] = self.gpus_per_job
        if self.mem:
            params["mem"] = self.mem
        if self.extra:
            params["additional_parameters"] = dict(self.extra)
        return params


def parse_time(text: str) -> int:
    """Minutes from ``MINUTES``, ``HH:MM:SS`` or ``D-HH:MM:SS`` (Slurm's ``--time`` forms)."""
    try:
        days, _, clock = text.rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        if len(parts) == 1:
            minutes = parts[0]
        elif len(parts) == 3:
            minutes = parts[0] * 60 + parts[1] + (parts[2] > 0)
        else:
            raise ValueError(text)
        minutes += int(days) * 24 * 60 if days else 0
    except ValueError:
        raise UsageError(f"--slurm-time {text}: expected minutes or HH:MM:SS (or D-HH:MM:SS)") from None
    if minutes < 1:
        raise UsageError(f"--slurm-time {text}: must be at least one minute")
    return minutes


def sbatch_script(options: SlurmOptions, folder: Path) -> str:
    """The sbatch script submitit writes for one task with ``options`` (no cluster needed)."""
    from submitit.slurm.slurm import _make_sbatch_string  # submitit's own writer, as it submits

    return _make_sbatch_string(command="python -m submitit.core._submit", folder=folder,
                               **options.sbatch_parameters())


class SeedGroupTask:
    """What one Slurm task runs: a seed group, to its summaries. On preemption or timeout
    submitit asks :meth:`checkpoint` for what to requeue: the same task, which resumes from the
    runs' own checkpoints."""

    def __call__(self, plans: list[RunPlan], device: str, threads: int, home: str | None) -> list[dict[str, Any]]:
        return run_seed_group(plans, device, threads, home)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


class SlurmLauncher:
    """Seed groups as the tasks of one Slurm job array (see the module docstring)."""

    def __init__(self, options: SlurmOptions, results: Path) -> None:
        self.options, self.results = options, results

    def parts(self, runs: int, device: torch.device) -> int:
        return cluster_parts(runs, device, self.options.gpus_per_job)

    def executor(self) -> Any:
        try:
            import submitit
        except ImportError:
            raise UsageError(f"--launcher slurm needs submitit: {INSTALL_HINT}") from None
        folder = self.results / ".slurm" / "%j"
        if self.options.cluster == "local":
            executor = submitit.LocalExecutor(folder)
            executor.update_parameters(timeout_min=self.options.time_minutes, gpus_per_node=self.options.gpus_per_job)
            return executor
        if shutil.which("sbatch") is None:
            raise OffbenchError("--launcher slurm: no 'sbatch' on this machine; run on a Slurm login node, or "
                                "--slurm-cluster local to run the tasks here")
        executor = submitit.SlurmExecutor(folder)
        executor.update_parameters(**self.options.sbatch_parameters())
        return executor

    def run(self, groups: list[list[RunPlan]], device: torch.device, sink: Sink) -> None:
        executor = self.executor()
        n, home = len(groups), os.environ.get("OFFBENCH_HOME")
        jobs = executor.map_array(SeedGroupTask(), groups, [task_device(device, self.options.gpus_per_job)] * n,
                                  [self.options.cpus_per_job] * n, [home] * n)
        if self.options.detach:
            for group in groups:
                sink.submitted(group)
            return
        for group in groups:
            report_start(group, sink.report)
        pending = dict(zip(jobs, groups))
        progress = RecordProgress(groups, sink.report)
        try:
            while pending:
                progress.poll()
                for job in [j for j in pending if j.done()]:
                    group = pending.pop(job)
                    try:
                        sink.finished(group, job.result())
                    except Exception as e:  # noqa: BLE001  (a failed task must not stop the others)
                        sink.failed(group, f"Slurm task {job.job_id} failed ({_last_line(e)}); its log: "
                                           f"{job.paths.stderr}")
                time.sleep(POLL_SECONDS if pending else 0)
        except KeyboardInterrupt:
            for job in pending:  # the runs keep their checkpoints; the same command resumes them
                job.cancel(check=False)
            raise


def _last_line(error: BaseException) -> str:
    """The task's own error from submitit's report (its traceback, then where the logs are): the
    traceback's last line, without the exception's module path for offbench's one-line errors."""
    parts = re.split(r"-{10,}", str(error).strip())
    trace = parts[1] if len(parts) >= 3 else parts[0]
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    name, sep, message = lines[-1].partition(": ")
    return message if sep and name.startswith("offbench.errors.") else lines[-1]
