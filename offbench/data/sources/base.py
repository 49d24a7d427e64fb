"""What every dataset source shares: the fetch context, the arrays type and the registry."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offbench.data.spec import DatasetSpec
from offbench.errors import UsageError
from offbench.paths import inside
from offbench.registry import Registry


@dataclass(frozen=True)
class FetchContext:
    """How to obtain the raw data: download directory, mirror, local copy, parallelism, progress."""

    downloads: Path
    mirror: str | None = None
    local: Path | None = None
    workers: int = 4
    progress: Any = None

    def base_url(self, spec: DatasetSpec) -> str:
        """The mirror (``--mirror`` or ``$OFFBENCH_MIRROR``) if given, else the spec's ``base_url``."""
        mirror = self.mirror or os.environ.get("OFFBENCH_MIRROR")
        return mirror or spec.params["base_url"]

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
