"""Dataset sources: each turns a :class:`DatasetSpec` into canonical arrays and provenance.

A source is a function ``build(spec, ctx) -> (arrays, attrs)`` registered under the ``source``
value used in ``datasets.toml``; ``ctx`` (:class:`FetchContext`) says where downloads go, which
mirror to use and whether the user gave a local copy. Third-party packages add sources via the
``offbench.sources`` entry point.
"""

from __future__ import annotations

from offbench.data.sources import d4rl, dqn_replay, generated, keytodoor, minari, ogbench, registered, rl_unplugged  # noqa: F401  (they register)
from offbench.data.sources.base import SOURCES, Arrays, Build, FetchContext

__all__ = ["SOURCES", "Arrays", "Build", "FetchContext", "get_source"]


def get_source(kind: str) -> Build:
    """The builder for a ``source`` kind: a built-in or a plug-in's entry point."""
    return SOURCES.get(kind)
