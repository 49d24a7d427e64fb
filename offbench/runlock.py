"""The per-run lock: one process trains a run at a time, on local disks and on network
filesystems alike (where ``flock`` may be a no-op or local to one node).

The lock is a file created exclusively (``O_CREAT | O_EXCL``, atomic on NFS v3+ and local disks)
that names its holder (host, pid) and whose modification time is a heartbeat, refreshed every
:data:`HEARTBEAT_SECONDS` by a thread while the lock is held. A lock is stale, and is taken over,
when its holder on this host is no longer alive, or when its heartbeat is older than
:data:`STALE_SECONDS` (a holder on another host that died). Taking over renames the stale file
aside first, so of two processes that find one stale lock, one takes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from offbench.errors import OffbenchError
from offbench.paths import pid_alive

HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 60.0
#: A lock file being created is empty for an instant; an empty or unreadable one older than this
#: is a leftover (earlier versions left empty lock files behind).
TORN_SECONDS = 5.0


@dataclass(frozen=True)
class Holder:
    """Who holds a run's lock, and when it last said it was alive."""

    host: str
    pid: int
    token: str
    heartbeat: float  # the lock file's modification time

    def alive(self, now: float | None = None) -> bool:
        if self.host == socket.gethostname():
            return pid_alive(self.pid)
        return (now or time.time()) - self.heartbeat < STALE_SECONDS


def holder(path: Path) -> Holder | None:
    """The live holder of the lock at ``path``, or None (no lock, or a stale one)."""
    found = _read(path)
    return found if found is not None and found.alive() else None


def _read(path: Path) -> Holder | None:
    """The lock file's holder as written (alive or not); None if there is no lock file, or it is
    a leftover (empty or unreadable, and older than :data:`TORN_SECONDS`)."""
    try:
        mtime = path.stat().st_mtime
        data = json.loads(path.read_text())
        return Holder(str(data["host"]), int(data["pid"]), str(data["token"]), mtime)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        try:
            fresh = time.time() - path.stat().st_mtime < TORN_SECONDS
        except OSError:
            return None
        return Holder("?", -1, "", time.time()) if fresh else None  # being written: treat as held


def _create(path: Path, token: str) -> bool:
    """Create the lock file naming this process; False if it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "token": token, "since": time.time()}, f)
    return True


def _take_over(path: Path, seen: Holder | None) -> None:
    """Move a stale lock file aside, unless it changed since it was judged stale."""
    aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = _read(aside)
    if moved is not None and (seen is None or moved.token != seen.token):  # another process took it first
        with contextlib.suppress(OSError):
            os.link(aside, path)  # put it back, unless a newer one is there already
    with contextlib.suppress(OSError):
        os.unlink(aside)


class RunHeld(OffbenchError):
    """A run's lock is held by another live process (``holder``)."""

    def __init__(self, label: str, holder: Holder) -> None:
        where = "this machine" if holder.host == socket.gethostname() else holder.host
        super().__init__(f"{label} is being run by another offbench process (pid {holder.pid} on {where}); "
                         "wait for it or stop it")
        self.label, self.holder, self.where = label, holder, where


def clear_if_stale(path: Path) -> bool:
    """Remove the lock at ``path`` if its holder is gone (a run another process finished after
    its first holder was killed); True if no live process holds it now."""
    current = _read(path)
    if current is not None and current.alive():
        return False
    if path.exists():
        _take_over(path, current)
    return True


@contextlib.contextmanager
def run_lock(path: Path, label: str) -> Iterator[None]:
    """Hold the lock at ``path`` while a run executes; an error naming the holder if another live
    process has it."""
    token = uuid.uuid4().hex
    for _ in range(3):
        if _create(path, token):
            break
        current = _read(path)
        if current is not None and current.alive():
            raise RunHeld(label, current)
        _take_over(path, current)
    else:
        raise OffbenchError(f"{label}: could not take its lock {path}; try again")
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):
                os.utime(path)

    thread = threading.Thread(target=beat, daemon=True, name="offbench-lock-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        mine = _read(path)
        if mine is not None and mine.token == token:
            with contextlib.suppress(OSError):
                path.unlink()
