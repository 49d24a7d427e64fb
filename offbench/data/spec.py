"""``datasets.toml`` -> :class:`DatasetSpec`; name lookup with globs and "did you mean"."""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from offbench.errors import OffbenchError, UsageError, unknown

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

COMMON_KEYS = {
    "description", "domain", "source", "env", "env_kwargs", "max_episode_steps",
    "ref_min_return", "ref_max_return", "score", "target_returns", "content_sha256",
}


@dataclass(frozen=True)
class DatasetSpec:
    """Everything offbench knows about one dataset before it is fetched."""

    name: str
    domain: str
    source: str
    env: str
    max_episode_steps: int
    ref_min_return: float
    ref_max_return: float
    target_returns: tuple[float, ...]
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    score: str = "normalized score"
    description: str = ""
    content_sha256: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def normalize(self, episode_return: float) -> float:
        """Normalized score: 0 at the reference minimum, 100 at the reference maximum."""
        return 100.0 * (episode_return - self.ref_min_return) / (self.ref_max_return - self.ref_min_return)

    @classmethod
    def from_toml(cls, name: str, table: dict[str, Any]) -> DatasetSpec:
        missing = {"domain", "source", "env", "max_episode_steps", "ref_min_return",
                   "ref_max_return", "target_returns"} - table.keys()
        if missing:
            raise OffbenchError(f"datasets.toml: [{name}] lacks {', '.join(sorted(missing))}")
        return cls(
            name=name,
            domain=table["domain"],
            source=table["source"],
            env=table["env"],
            env_kwargs=dict(table.get("env_kwargs", {})),
            max_episode_steps=int(table["max_episode_steps"]),
            ref_min_return=float(table["ref_min_return"]),
            ref_max_return=float(table["ref_max_return"]),
            target_returns=tuple(float(t) for t in table["target_returns"]),
            score=table.get("score", "normalized score"),
            description=table.get("description", ""),
            content_sha256=table.get("content_sha256", ""),
            params={k: v for k, v in table.items() if k not in COMMON_KEYS},
        )


def registry_path() -> Path:
    """``$OFFBENCH_DATASETS`` if set, else the ``datasets.toml`` shipped with offbench."""
    override = os.environ.get("OFFBENCH_DATASETS")
    if override:
        return Path(override)
    return Path(str(resources.files("offbench") / "datasets.toml"))


@lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> dict[str, DatasetSpec]:
    try:
        tables = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise OffbenchError(f"cannot read dataset registry {path}: {e}") from None
    return {name: DatasetSpec.from_toml(name, t) for name, t in tables.items()}


def all_specs() -> dict[str, DatasetSpec]:
    """Every registered dataset, by name."""
    path = registry_path()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise OffbenchError(f"dataset registry not found: {path}") from None
    return _load(path, mtime)


def get_spec(name: str) -> DatasetSpec:
    """The spec named ``name``; a usage error naming the closest names otherwise."""
    specs = all_specs()
    if name not in specs:
        raise unknown("dataset", name, specs)
    return specs[name]


def resolve_names(patterns: list[str]) -> list[str]:
    """Expand names and globs (``keytodoor-*``) into registered names, in order, without repeats."""
    specs = all_specs()
    out: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matches = sorted(fnmatch.filter(specs, pattern))
            if not matches:
                raise UsageError(f"no dataset matches '{pattern}' (see 'offbench list datasets')")
        else:
            matches = [get_spec(pattern).name]
        out.extend(m for m in matches if m not in out)
    return out
