"""Dataset sources: each turns a :class:`DatasetSpec` into canonical arrays and provenance.

A source is a function ``build(spec) -> (arrays, attrs)`` registered under the ``source`` value
used in ``datasets.toml``; third-party packages add sources via the ``offbench.sources``
entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from offbench.data.spec import DatasetSpec
from offbench.registry import Registry

Build = Callable[[DatasetSpec], tuple[dict[str, np.ndarray], dict[str, Any]]]

SOURCES: Registry[Build] = Registry("dataset source", group="offbench.sources")


def get_source(kind: str) -> Build:
    """The builder for a ``source`` kind (importing the built-in sources on first use)."""
    from offbench.data.sources import keytodoor  # noqa: F401  (registers itself)

    return SOURCES.get(kind)
