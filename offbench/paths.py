"""Where offbench keeps things (cache and results roots) and how it writes them (atomically)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from offbench.errors import OffbenchError


def cache_root() -> Path:
    """The dataset cache: ``$OFFBENCH_HOME`` or ``~/.cache/offbench``."""
    return Path(os.environ.get("OFFBENCH_HOME") or Path.home() / ".cache" / "offbench").expanduser()


def default_results_root() -> Path:
    """Run records: ``$OFFBENCH_RESULTS`` or ``./results``."""
    return Path(os.environ.get("OFFBENCH_RESULTS") or "results")


def inside(root: Path, *parts: str) -> Path:
    """``root/parts...``, refusing any path that would resolve outside ``root``."""
    root = root.resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise OffbenchError(f"refusing to write outside {root}: {'/'.join(parts)}")
    return path


#: The suffix of :func:`atomic_path`'s temporary files.
TEMPORARY = ".tmp"
#: The process's file-creation mask, read once (``os.umask`` can only be read by setting it).
UMASK = os.umask(0o022)
os.umask(UMASK)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (``.<name>.@<host>@<pid>.<random>.tmp``: who writes it);
    rename it onto ``path`` only if the block succeeds.

    A reader never sees a partial file: it sees the old file (or none) until the rename.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = f"@{socket.gethostname()}@{os.getpid()}"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{writer}.", suffix=TEMPORARY, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~UMASK)  # mkstemp's 0600 would hide results from a shared group
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_temporaries(directory: Path, stale_seconds: float = 3600.0) -> list[Path]:
    """Delete the temporary files interrupted :func:`atomic_path` writes left in ``directory``:
    those of a writer on this machine that is no longer alive, and any older than
    ``stale_seconds`` (a writer elsewhere, or a name without its writer); return them. A live
    writer's file is never touched."""
    host, removed = socket.gethostname(), []
    for p in directory.glob(f".*{TEMPORARY}"):
        m = re.search(r"\.@(?P<host>[^@/]+)@(?P<pid>\d+)\.", p.name)
        try:
            age = time.time() - p.stat().st_mtime
        except FileNotFoundError:
            continue
        dead = m is not None and m["host"] == host and not pid_alive(int(m["pid"]))
        if dead or age > stale_seconds:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def ensure_writable(directory: Path) -> None:
    """Fail early, with a one-line error, if ``directory`` cannot be created and written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".offbench-write-test-"):
            pass
    except OSError as e:
        raise OffbenchError(f"cannot write to {directory}: {e.strerror or e}") from None
