"""HTTP downloads into the cache: resume with Range requests, Content-Length, sha256, progress.

A file is fetched to ``<dest>.part``; an interrupted transfer leaves the ``.part`` file, and the
next attempt asks the server for the remaining bytes only (``Range: bytes=N-``). A file counts as
complete only when its size equals the server's Content-Length and its sha256 matches the pinned
one (if any); then a record ``<dest>.json`` (url, size, sha256, when) is written and the file is
renamed to ``dest``. A download may name several URLs (upstream, then mirrors): a server that
answers with an error, an HTML page, or a file of the wrong size or digest is passed over for the
next, and the record names the one that served the file. Callers run several downloads in
parallel threads (``cancel`` stops one).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import http.client
import json
import os
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offbench.errors import OffbenchError
from offbench.paths import write_json_atomic

CHUNK = 1 << 20
TIMEOUT_S = 60
ALTERNATIVES = "use --mirror BASE (or $OFFBENCH_MIRROR) or --from-file/--from-dir with a copy made elsewhere"


@dataclass(frozen=True)
class Download:
    """One file to fetch: where from (``url``, then each of ``fallbacks`` in turn if it fails),
    where to, and the sha256 it must have (empty: any)."""

    url: str
    dest: Path
    sha256: str = ""
    fallbacks: tuple[str, ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.fallbacks)


@dataclass(frozen=True)
class Downloaded:
    """A complete file in the cache and its record."""

    url: str
    path: Path
    size: int
    sha256: str
    fetched: str


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".json")


def completed(job: Download) -> Downloaded | None:
    """The record of a previous complete download of ``job``, if the file is still intact in size."""
    rec, dest = record_path(job.dest), job.dest
    try:
        r = json.loads(rec.read_text())
        if dest.stat().st_size != r["size"] or (job.sha256 and r["sha256"] != job.sha256):
            return None
        return Downloaded(url=r["url"], path=dest, size=r["size"], sha256=r["sha256"], fetched=r["fetched"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def discard(dest: Path) -> None:
    """Forget a downloaded file (e.g. after it failed to convert), so the next fetch starts over."""
    for p in (dest, record_path(dest), dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.url")):
        p.unlink(missing_ok=True)


class Rejected(OffbenchError):
    """A server answered, but not with the file (an error status, an HTML page, a wrong size or
    digest): the next URL of the download may serve it. ``reason``: what was wrong, in a few words."""

    def __init__(self, url: str, reason: str, message: str | None = None) -> None:
        super().__init__(message or f"cannot download {url}: {reason}; {ALTERNATIVES}")
        self.url, self.reason = url, reason


def _open(url: str, offset: int) -> Any:
    req = urllib.request.Request(url, headers={"User-Agent": "offbench", "Accept-Encoding": "identity"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the partial file is not a prefix the server knows: start over
            return None
        raise Rejected(url, f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise Rejected(url, str(reason)) from None


def _total_size(resp: Any, offset: int, url: str) -> tuple[int | None, int]:
    """(total size or None, offset the body starts at) from a 200 or 206 response."""
    if resp.status == 206:
        m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != offset:
            raise OffbenchError(f"cannot resume {url}: the server answered an unexpected Content-Range")
        return (None if m.group(2) == "*" else int(m.group(2))), offset
    length = resp.headers.get("Content-Length")
    return (int(length) if length is not None else None), 0


class Cancelled(OffbenchError):
    """A download stopped on request; its ``.part`` file is kept for resuming."""


def download(job: Download, progress: Any = None, cancel: threading.Event | None = None) -> Downloaded:
    """Fetch ``job.url`` (or, where a server refuses, each of ``job.fallbacks`` in turn) to
    ``job.dest`` (resuming a ``.part`` file from the same server) and verify it; see module doc.

    ``progress`` is an optional ``rich.progress.Progress``. Raises :class:`OffbenchError` with one
    line naming the URL on any failure; a partial file is kept only where resuming can finish it.
    """
    job.dest.parent.mkdir(parents=True, exist_ok=True)
    with open(job.dest.with_name(job.dest.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another fetch of the same file waits, then finds it complete
        done = completed(job)
        if done is not None:
            return done
        refused: list[Rejected] = []
        for url in job.urls:  # upstream first, then each mirror, until one serves the file
            try:
                return _download_from(job, url, progress, cancel)
            except Rejected as e:
                refused.append(e)
        if len(refused) == 1:
            raise refused[0]
        tried = "; ".join(f"{e.url}: {e.reason}" for e in refused)
        raise OffbenchError(f"cannot download {job.dest.name} from any of {len(refused)} places ({tried}); "
                            f"{ALTERNATIVES}")


def _download_from(job: Download, url: str, progress: Any, cancel: threading.Event | None) -> Downloaded:
    part = job.dest.with_name(job.dest.name + ".part")
    origin = part.with_name(part.name + ".url")  # where the partial file came from

    def drop() -> None:
        part.unlink(missing_ok=True)
        origin.unlink(missing_ok=True)

    if part.exists() and (not origin.exists() or origin.read_text() != url):
        drop()  # another server's bytes: a prefix of this one's file only if they are the same file
    offset = part.stat().st_size if part.exists() else 0
    resp = _open(url, offset)
    if resp is None:
        drop()
        offset = 0
        resp = _open(url, 0)
    task = None
    with resp:
        if resp.headers.get_content_type() == "text/html":
            raise Rejected(url, "the server answered with an HTML page, not the file")
        total, offset = _total_size(resp, offset, url)
        origin.write_text(url)
        if progress is not None:
            task = progress.add_task(job.dest.name, total=total, completed=offset)
        written, dropped = offset, False
        try:
            with open(part, "r+b" if offset else "wb") as f:
                f.seek(offset)
                f.truncate()
                while True:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(f"download of {url} cancelled at {written:,} bytes (kept to resume)")
                    try:
                        chunk = resp.read(CHUNK)
                    except http.client.IncompleteRead as e:
                        chunk, dropped = e.partial, True  # keep what arrived; the connection dropped
                    except OSError as e:
                        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                            raise
                        chunk, dropped = b"", True
                    if chunk:
                        f.write(chunk)
                        written += len(chunk)
                    if dropped or not chunk:
                        break
                    if task is not None:
                        progress.update(task, completed=written)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            drop()
            raise OffbenchError(f"cannot write {part}: {e.strerror or e} (disk full?); nothing was cached") from None
    if dropped or (total is not None and written != total):
        shown = f"{total:,}" if total is not None else "an unknown number of"
        if total is not None and written > total:  # more than it announced: not a file to resume
            drop()
            raise Rejected(url, f"it sent {written:,} bytes after announcing {total:,}")
        raise OffbenchError(f"download of {url} stopped at {written:,} of {shown} bytes; "
                            "run the same fetch again to resume it")
    digest = sha256_file(part)
    if job.sha256 and digest != job.sha256:
        drop()
        reason = f"sha256 {digest[:16]}... differs from the pinned {job.sha256[:16]}..."
        raise Rejected(url, reason, f"{url}: {reason}; the file was discarded (a mirror with a different file?)")
    fetched = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rec = {"url": url, "size": written, "sha256": digest, "fetched": fetched}
    os.replace(part, job.dest)
    origin.unlink(missing_ok=True)
    write_json_atomic(record_path(job.dest), rec)
    return Downloaded(url=url, path=job.dest, size=written, sha256=digest, fetched=fetched)


def url_join(base: str, relative: str) -> str:
    """``base`` + ``relative`` with exactly one slash between them."""
    return base.rstrip("/") + "/" + relative.lstrip("/")
