"""How many CPU threads a job may use: its fair share of the cores given to it that nothing else
is using, re-measured while it runs.

Torch's default (one thread per core of the machine) makes a job on a busy CPU wait on threads
that have no core to run on: a run can be 10-20x slower than single-threaded. So every offbench
process that computes holds a :class:`CoreShare`: it registers itself (a file named by its pid in
a per-user directory), measures how busy the given cores are, subtracts what the registered
offbench processes use themselves, and splits the rest evenly between them. Two commands started
together thus settle on half the free cores each within seconds, whichever started first.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from offbench.errors import UsageError
from offbench.paths import pid_alive

#: Seconds between two measurements while a job runs (a measurement reads a few /proc files).
REBALANCE_SECONDS = 5.0


def given_cores() -> list[int]:
    """The CPUs this process may run on (its affinity mask, e.g. a Slurm allocation or ``taskset``)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def _cpu_jiffies(cpus: list[int]) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over ``cpus`` from /proc/stat; None where there is none."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cpus}
    busy = total = 0.0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            values = [float(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            total += sum(values)
            busy += sum(values) - values[3] - values[4]
    return (busy, total) if total else None


def _process_jiffies(pid: int) -> float:
    """CPU time (user + system jiffies, all threads) process ``pid`` has used; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return float(fields[11]) + float(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def busy_cores(window: float = 0.25) -> float:
    """How many of the given cores are busy (every process, this one included), measured over
    ``window`` seconds; the 1-minute load average where /proc/stat is missing."""
    cpus = given_cores()
    before = _cpu_jiffies(cpus)
    if before is None:
        with contextlib.suppress(OSError):
            return min(float(len(cpus)), os.getloadavg()[0])
        return 0.0
    time.sleep(window)
    after = _cpu_jiffies(cpus)
    if after is None or after[1] <= before[1]:
        return 0.0
    return len(cpus) * (after[0] - before[0]) / (after[1] - before[1])


def free_cores() -> int:
    """Given cores minus busy ones, rounded, at least 1."""
    return max(1, round(len(given_cores()) - busy_cores()))


def threads_per_job(jobs: int, threads: int | None = None, free: int | None = None) -> int:
    """Threads for each of ``jobs`` concurrent jobs: ``threads`` when given, else the ``free``
    cores (measured when not given) shared evenly, at least 1."""
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads must be >= 1, got {threads}")
        return threads
    return max(1, (free or free_cores()) // max(1, jobs))


def _registry() -> Path:
    path = Path(tempfile.gettempdir()) / f"offbench-cores-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


class CoreShare:
    """This process's share of the free cores, as torch's thread count, for the length of a
    ``with`` block (``threads``: a fixed count instead). Call :meth:`update` often: it splits the
    cores again at once when an offbench process starts or ends (the registry directory changed),
    and measures again every ``REBALANCE_SECONDS``."""

    def __init__(self, threads: int | None = None) -> None:
        self.fixed = threads_per_job(1, threads) if threads is not None else None
        self.previous = torch.get_num_threads()
        self.entry = _registry() / str(os.getpid())
        self.last: tuple[float, tuple[float, float] | None, dict[int, float]] | None = None
        self.others = 0.0  # cores kept busy by processes that are not offbench's, as last measured
        self.seen = 0  # the registry's modification time (ns) when the peers were last counted

    def __enter__(self) -> CoreShare:
        self.entry.touch()
        if self.fixed is not None:
            torch.set_num_threads(self.fixed)
            return self
        self._sample()
        time.sleep(0.25)
        self._rebalance()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.entry.unlink(missing_ok=True)
        torch.set_num_threads(self.previous)

    def update(self) -> None:
        """Split again if the peers changed; measure again every ``REBALANCE_SECONDS``."""
        if self.fixed is not None or self.last is None:
            return
        if time.monotonic() - self.last[0] >= REBALANCE_SECONDS:
            self._rebalance()
        elif _mtime(_registry()) != self.seen:
            self._split(len(self._peers()))

    def _peers(self) -> list[int]:
        """Live offbench processes holding a share (this one included); entries of dead ones are removed."""
        registry = _registry()
        pids = []
        for entry in registry.iterdir():
            if not entry.name.isdigit():
                continue
            if pid_alive(int(entry.name)):
                pids.append(int(entry.name))
            else:
                entry.unlink(missing_ok=True)
        self.seen = _mtime(registry)
        return sorted(set(pids) | {os.getpid()})

    def _sample(self) -> None:
        self.last = (time.monotonic(), _cpu_jiffies(given_cores()), {p: _process_jiffies(p) for p in self._peers()})

    def _split(self, peers: int) -> None:
        """The cores not busy with other work, shared evenly between the ``peers`` offbench processes."""
        torch.set_num_threads(max(1, int((len(given_cores()) - self.others + 0.25) // peers)))

    def _rebalance(self) -> None:
        assert self.last is not None
        _, cpu_before, procs_before = self.last
        self._sample()
        _, cpu_after, procs_after = self.last
        if cpu_before is None or cpu_after is None or cpu_after[1] <= cpu_before[1]:
            self.others = 0.0
        else:
            per_core = (cpu_after[1] - cpu_before[1]) / len(given_cores())  # jiffies one core had in the interval
            busy = (cpu_after[0] - cpu_before[0]) / per_core
            ours = sum(procs_after[p] - procs_before.get(p, procs_after[p]) for p in procs_after) / per_core
            self.others = max(0.0, busy - ours)
        self._split(len(procs_after))


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
