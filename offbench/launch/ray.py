"""The Ray backend: one Ray task per seed group (``num_cpus``/``num_gpus`` each), on the cluster
at ``--ray-address`` (or ``RAY_ADDRESS``), else on a Ray runtime started here for the command.

A task trains its group with :func:`~offbench.launch.base.run_seed_group` and writes the usual run
records, so a task whose worker dies is retried by Ray (up to ``RETRIES`` times) and resumes from
its runs' checkpoints, and the same command run again resumes whatever did not finish.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import torch

from offbench.errors import OffbenchError, UsageError
from offbench.launch.base import Sink, cluster_parts, run_seed_group, task_device
from offbench.launch.events import RecordProgress, report_start
from offbench.train import RunPlan

INSTALL_HINT = "pip install 'offbench[ray]'"
RETRIES = 3  # a task whose worker process dies is run again, resuming from its checkpoints
POLL_SECONDS = 1.0
CONNECT_SECONDS = 5.0


@dataclass(frozen=True)
class RayOptions:
    """What each task asks for, and which cluster (None: ``RAY_ADDRESS``, else a local runtime)."""

    address: str | None = None
    cpus_per_job: int = 1
    gpus_per_job: float = 0.0


def check_reachable(address: str) -> None:
    """A one-line error unless something listens at ``address`` (``host:port`` or
    ``ray://host:port``); Ray itself waits minutes on an address that does not answer."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise UsageError(f"--ray-address {address}: expected HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as e:
        raise OffbenchError(f"cannot reach a Ray cluster at {address} ({e.strerror or e}); nothing was "
                            "submitted; start it ('ray start --head') or fix --ray-address / RAY_ADDRESS") from None


class RayLauncher:
    """Seed groups as Ray tasks (see the module docstring)."""

    def __init__(self, options: RayOptions) -> None:
        self.options = options

    def parts(self, runs: int, device: torch.device) -> int:
        return cluster_parts(runs, device, self.options.gpus_per_job)

    def check(self) -> str | None:
        """Fail in one line, before anything runs, where Ray is missing or its cluster unreachable;
        the cluster's address (None: a runtime of the command's own)."""
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError(f"--launcher ray needs Ray: {INSTALL_HINT}") from None
        address = self.options.address or os.environ.get("RAY_ADDRESS") or None
        if address:
            check_reachable(address)
        return address

    def connect(self) -> tuple[Any, bool]:
        """Ray, connected (to the given cluster, or to a runtime started for this command), and
        whether this call connected it (then :meth:`run` disconnects at the end)."""
        address = self.check()
        import ray

        if ray.is_initialized():  # a caller of the Python API connected already
            return ray, False
        quiet = not os.environ.get("OFFBENCH_VERBOSE")  # Ray's start-up notices only with --verbose
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=not quiet,
                     logging_level=logging.ERROR if quiet else logging.INFO,
                     **({} if address else {"num_cpus": os.cpu_count() or 1}))  # "local": a runtime of its own
        except ConnectionError as e:  # it answered, but not as a Ray cluster that lets us in
            raise OffbenchError(f"cannot join the Ray cluster at {address}: {_cause(e)}; nothing was submitted "
                                "(a cluster with token authentication needs its token: see Ray's docs)") from None
        return ray, True

    def run(self, groups: list[list[RunPlan]], device: torch.device, sink: Sink) -> None:
        ray, started_here = self.connect()
        task = ray.remote(num_cpus=self.options.cpus_per_job, num_gpus=self.options.gpus_per_job,
                          max_retries=RETRIES)(run_seed_group)
        on = task_device(device, self.options.gpus_per_job)
        home = os.environ.get("OFFBENCH_HOME")
        pending = {task.remote(group, on, self.options.cpus_per_job, home): group for group in groups}
        for group in groups:
            report_start(group, sink.report)
        progress = RecordProgress(groups, sink.report)
        try:
            while pending:
                progress.poll()
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                for ref in ready:
                    group = pending.pop(ref)
                    try:
                        sink.finished(group, ray.get(ref))
                    except Exception as e:  # noqa: BLE001  (a failed task must not stop the others)
                        sink.failed(group, f"Ray task failed: {_cause(e)}")
        except KeyboardInterrupt:
            for ref in pending:  # the runs keep their checkpoints; the same command resumes them
                ray.cancel(ref, force=True)
            raise
        finally:
            if started_here:
                ray.shutdown()


def _cause(error: BaseException) -> str:
    """The task's own error in one line (Ray wraps it with the remote traceback)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__
