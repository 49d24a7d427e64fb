"""Where offbench keeps things (cache and results roots) and how it writes them (atomically)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
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


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A reader never sees a partial file: it sees the old file (or none) until the rename.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


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
