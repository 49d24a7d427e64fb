"""Dataset sources: each turns a :class:`DatasetSpec` into canonical arrays and provenance.

A source is a function ``build(spec, ctx) -> (arrays, attrs)`` registered under the ``source``
value used in ``datasets.toml``; ``ctx`` (:class:`FetchContext`) says where downloads go, which
mirror to use and whether the user gave a local copy. Third-party packages add sources via the
``offbench.sources`` entry point.
"""

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


def get_source(kind: str) -> Build:
    """The builder for a ``source`` kind (importing the built-in sources on first use)."""
    from offbench.data.sources import d4rl, dqn_replay, generate, keytodoor, minari  # noqa: F401  (register)

    return SOURCES.get(kind)
