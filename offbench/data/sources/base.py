"""What every dataset source shares: the fetch context, the arrays type and the registry."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offbench.data.download import Download, url_join
from offbench.data.spec import DatasetSpec
from offbench.errors import UsageError
from offbench.paths import inside
from offbench.registry import Registry


@dataclass(frozen=True)
class FetchContext:
    """How to obtain the raw data: download directory, mirror, local copy, parallelism, progress."""

    downloads: Path
    mirror: str | tuple[str, ...] | None = None
    local: Path | None = None
    workers: int = 4
    progress: Any = None

    def base_urls(self, spec: DatasetSpec) -> list[str]:
        """Where to download from, in order: the mirrors given (``--mirror``, several allowed, or
        ``$OFFBENCH_MIRROR``, separated by spaces) if any, else the dataset's ``base_url`` and then
        its ``mirrors`` from ``datasets.toml``."""
        given = self.mirror or os.environ.get("OFFBENCH_MIRROR", "").split()
        mirrors = [given] if isinstance(given, str) else list(given)
        return list(dict.fromkeys(mirrors or [spec.params["base_url"], *spec.params.get("mirrors", [])]))

    def downloads_of(self, spec: DatasetSpec, relative: str, sha256: str = "", quote: bool = False) -> Download:
        """The download of ``relative`` (a path under the base URL) from every place of
        :meth:`base_urls`, in order, into :meth:`download_path`."""
        rel = relative.replace("$", "%24") if quote else relative
        urls = [url_join(base, rel) for base in self.base_urls(spec)]
        return Download(urls[0], self.download_path(spec, relative), sha256, tuple(urls[1:]))

    def download_path(self, spec: DatasetSpec, relative: str) -> Path:
        """Where a downloaded upstream file is kept: ``downloads/<source>/<relative path>``."""
        return inside(self.downloads, spec.source, *relative.split("/"))

    def require_local(self, spec: DatasetSpec, kind: str) -> Path:
        """The ``--from-file``/``--from-dir`` path, checked to exist."""
        assert self.local is not None
        if not self.local.exists():
            raise UsageError(f"{spec.name}: {self.local} does not exist (expected {kind})")
        return self.local


Arrays = dict[str, np.ndarray]
Build = Callable[[DatasetSpec, FetchContext], tuple[Arrays, dict[str, Any]]]

SOURCES: Registry[Build] = Registry("dataset source", group="offbench.sources")
