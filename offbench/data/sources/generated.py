"""The source of datasets made on this machine (``offbench generate``): their cache files are
written by the generator, so fetching one that is missing can only say how to make it again."""

from __future__ import annotations

from typing import Any

from offbench.data.sources.base import SOURCES, Arrays, FetchContext
from offbench.data.spec import DatasetSpec
from offbench.errors import OffbenchError


@SOURCES.register("generated")
def build(spec: DatasetSpec, ctx: FetchContext) -> tuple[Arrays, dict[str, Any]]:
    """Generated datasets are written by ``offbench generate``; fetching can only say so."""
    raise OffbenchError(f"{spec.name} is made by 'offbench generate' and its cache file is missing; "
                        f"run '{spec.params.get('command', 'offbench generate')}' again")


build.imports_local = False  # type: ignore[attr-defined]  # offbench makes these; --from-file has nothing to import
