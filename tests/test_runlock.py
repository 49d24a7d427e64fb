"""The per-run lock on storage where ``flock`` cannot be trusted: an exclusively created file
naming its holder, with a heartbeat; stale locks are taken over, live ones refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offbench import runlock
from offbench.errors import OffbenchError
from offbench.runlock import holder, run_lock

HOLD = """
import sys, time
from pathlib import Path
from offbench.runlock import run_lock
with run_lock(Path(sys.argv[1]), "run"):
    print("held", flush=True)
    time.sleep(60)
"""


def write_lock(path: Path, host: str, pid: int, age: float) -> None:
    path.write_text(json.dumps({"host": host, "pid": pid, "token": "t", "since": 0}))
    os.utime(path, (time.time() - age, time.time() - age))


def test_a_live_holder_is_refused_and_a_killed_one_taken_over_at_once(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert holder(lock) is not None and holder(lock).pid == proc.pid
        with pytest.raises(OffbenchError, match=f"being run by another offbench process \\(pid {proc.pid} on this"):
            with run_lock(lock, "run"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert lock.exists() and holder(lock) is None  # left behind by a dead process: stale
    with run_lock(lock, "run"):
        assert holder(lock).pid == os.getpid()
    assert not lock.exists()  # released


def test_a_holder_on_another_host_counts_while_its_heartbeat_is_fresh(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    write_lock(lock, "node17", 4242, age=1.0)
    with pytest.raises(OffbenchError, match="pid 4242 on node17"):
        with run_lock(lock, "run"):
            pass
    write_lock(lock, "node17", 4242, age=runlock.STALE_SECONDS + 1)  # node17 died: no heartbeat for a minute
    with run_lock(lock, "run"):
        assert json.loads(lock.read_text())["host"] == socket.gethostname()
    assert not lock.exists() and not list(tmp_path.glob(".lock.stale-*"))


def test_the_heartbeat_refreshes_the_lock_while_it_is_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runlock, "HEARTBEAT_SECONDS", 0.05)
    lock = tmp_path / ".lock"
    with run_lock(lock, "run"):
        os.utime(lock, (0, 0))
        deadline = time.monotonic() + 5
        while lock.stat().st_mtime == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert time.time() - lock.stat().st_mtime < 5


def test_an_empty_lock_file_from_an_earlier_version_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    lock.write_text("")
    os.utime(lock, (time.time() - 60, time.time() - 60))
    with run_lock(lock, "run"):
        assert holder(lock).pid == os.getpid()
    lock.write_text("")  # one being written right now counts as held
    with pytest.raises(OffbenchError, match="being run"):
        with run_lock(lock, "run"):
            pass


def test_of_processes_racing_for_one_stale_lock_one_wins(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    write_lock(lock, "node17", 4242, age=runlock.STALE_SECONDS + 1)
    race = """
import sys, time
from pathlib import Path
from offbench.errors import OffbenchError
from offbench.runlock import run_lock
time.sleep(float(sys.argv[2]) - time.time())
try:
    with run_lock(Path(sys.argv[1]), "run"):
        print("won", flush=True)
        time.sleep(1.0)
except OffbenchError:
    print("refused", flush=True)
"""
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", race, str(lock), str(start)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["refused", "refused", "refused", "won"]
