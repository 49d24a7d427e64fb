"""Phase markers for fault campaigns: with ``$OFFBENCH_TRACE`` naming a file, a training run
appends one line per phase boundary, ``<pid> <run> <phase> <begin|end> <step>``, written and
flushed at once, so that a process killed at a random moment leaves behind what it was doing
(``benchmarks/faults.py`` classifies its kills by it). Unset (the default), nothing is written."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

ENV = "OFFBENCH_TRACE"


def mark(run: str, phase: str, edge: str, step: int = 0) -> None:
    """Append one marker line (only when ``$OFFBENCH_TRACE`` is set)."""
    path = os.environ.get(ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:  # one write(2) of a short line with O_APPEND: lines of concurrent processes do not interleave
        os.write(fd, f"{os.getpid()} {run} {phase} {edge} {step}\n".encode())
    finally:
        os.close(fd)


@contextlib.contextmanager
def phase(run: str, name: str, step: int = 0) -> Iterator[None]:
    """Mark the beginning and the end of ``name`` around the block."""
    mark(run, name, "begin", step)
    yield
    mark(run, name, "end", step)
