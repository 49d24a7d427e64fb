"""``datasets.toml`` -> :class:`DatasetSpec`; name lookup with globs and "did you mean"."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from offbench import tomlfile
from offbench.errors import OffbenchError, UsageError, unknown
from offbench.paths import write_text_atomic


SPARSE = "-sparse"
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
    ref_min_return: float | None
    ref_max_return: float | None
    target_returns: tuple[float, ...]
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    score: str = "normalized score"
    description: str = ""
    content_sha256: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    base: str = ""  # for a derived variant: the dataset it is derived from
    reward: str = "dense"  # "delayed": each episode's whole return on its last step (the -sparse variants)

    @property
    def stored_as(self) -> str:
        """The dataset whose cache file holds the data (itself, or the base of a variant)."""
        return self.base or self.name

    def normalize(self, episode_return: float) -> float:
        """Normalized score: 0 at the reference minimum, 100 at the reference maximum."""
        if self.ref_min_return is None or self.ref_max_return is None:
            raise OffbenchError(f"{self.name}: no reference returns yet (they come with the data: fetch it first)")
        return 100.0 * (episode_return - self.ref_min_return) / (self.ref_max_return - self.ref_min_return)

    def sparse(self) -> DatasetSpec:
        """The delayed-reward variant ``<name>-sparse``, derived from this dataset when loaded."""
        return dataclasses.replace(
            self, name=f"{self.name}{SPARSE}", base=self.name, reward="delayed", content_sha256="",
            description=f"{self.name} with each episode's return on its last step, zeros elsewhere",
        )

    @classmethod
    def from_toml(cls, name: str, table: dict[str, Any]) -> DatasetSpec:
        if not isinstance(table, dict):
            raise OffbenchError(f"datasets.toml: [{name}] is not a table of fields")
        missing = {"domain", "source", "env", "max_episode_steps", "target_returns"} - table.keys()
        if missing:
            raise OffbenchError(f"datasets.toml: [{name}] lacks {', '.join(sorted(missing))}")
        for key, kinds, what in (("domain", str, "a string"), ("source", str, "a string"), ("env", str, "a string"),
                                 ("max_episode_steps", int, "an integer"), ("target_returns", list, "a list of numbers"),
                                 ("ref_min_return", (int, float), "a number"), ("ref_max_return", (int, float), "a number"),
                                 ("env_kwargs", dict, "a table")):
            value = table.get(key)
            if key in table and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise OffbenchError(f"datasets.toml: [{name}] {key} must be {what}, got {value!r}"[:300])
        if table["max_episode_steps"] < 1:
            raise OffbenchError(f"datasets.toml: [{name}] max_episode_steps must be >= 1, got {table['max_episode_steps']}")
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in table["target_returns"]):
            raise OffbenchError(f"datasets.toml: [{name}] target_returns must be a list of numbers")
        return cls(
            name=name,
            domain=table["domain"],
            source=table["source"],
            env=table["env"],
            env_kwargs=dict(table.get("env_kwargs", {})),
            max_episode_steps=int(table["max_episode_steps"]),
            ref_min_return=_float_or_none(table.get("ref_min_return")),
            ref_max_return=_float_or_none(table.get("ref_max_return")),
            target_returns=tuple(float(t) for t in table["target_returns"]),
            score=table.get("score", "normalized score"),
            description=table.get("description", ""),
            content_sha256=table.get("content_sha256", ""),
            params={k: v for k, v in table.items() if k not in COMMON_KEYS},
        )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def registry_path() -> Path:
    """``$OFFBENCH_DATASETS`` if set, else the ``datasets.toml`` shipped with offbench."""
    override = os.environ.get("OFFBENCH_DATASETS")
    if override:
        return Path(override)
    return Path(str(resources.files("offbench") / "datasets.toml"))


@lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> dict[str, DatasetSpec]:
    try:
        tables = tomlfile.read(path)
    except (OSError, tomlfile.TOMLDecodeError) as e:
        raise OffbenchError(f"cannot read dataset registry {path}: {e}") from None
    specs = {name: DatasetSpec.from_toml(name, t) for name, t in tables.items()}
    for name in list(specs):
        if not name.endswith(SPARSE):
            specs.setdefault(f"{name}{SPARSE}", specs[name].sparse())
    return specs


def local_registry_path() -> Path:
    """Datasets made or registered on this machine (``offbench generate``, ``offbench register``):
    ``$OFFBENCH_HOME/local-datasets.toml``."""
    from offbench.paths import cache_root

    return cache_root() / "local-datasets.toml"


def builtin_specs() -> dict[str, DatasetSpec]:
    """The datasets of ``datasets.toml`` alone (not those registered or generated on this machine)."""
    path = registry_path()
    try:
        return _load(path, path.stat().st_mtime)
    except OSError:
        raise OffbenchError(f"dataset registry not found: {path}") from None


def all_specs() -> dict[str, DatasetSpec]:
    """Every registered dataset, by name: ``datasets.toml``, then this machine's generated ones."""
    path = registry_path()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise OffbenchError(f"dataset registry not found: {path}") from None
    specs = _load(path, mtime)
    local = local_registry_path()
    if local.is_file():
        extra = _load(local, local.stat().st_mtime)
        specs = {**specs, **{k: v for k, v in extra.items() if k not in specs}}
    return specs


#: Datasets named by a catalogue's own id, ``PREFIX:ID`` (``minari:mujoco/pusher/expert-v0``):
#: prefix -> the function that makes the spec from the catalogue's metadata. Sources add theirs.
NAMESPACES: dict[str, Callable[[str], DatasetSpec]] = {}
#: The score's name where a dataset brings no reference returns and its own episodes set the scale.
OWN_RANGE_SCORE = "normalized score (0 and 100: the dataset's worst and best episode)"


def catalogue_id(name: str) -> tuple[str, str] | None:
    """``(prefix, id)`` of a name ``PREFIX:ID`` in a catalogue; None for a registered name."""
    prefix, sep, ident = name.partition(":")
    return (prefix, ident) if sep and prefix.isidentifier() else None


def get_spec(name: str) -> DatasetSpec:
    """The spec named ``name`` (registered, or ``PREFIX:ID`` in a catalogue); a usage error naming
    the closest names otherwise."""
    named = catalogue_id(name)
    if named is not None:
        prefix, ident = named
        importlib.import_module("offbench.data.sources")  # the sources add their namespaces
        if prefix not in NAMESPACES:
            raise UsageError(f"unknown dataset catalogue '{prefix}:' in '{name}'; catalogues: "
                             f"{', '.join(f'{p}:' for p in sorted(NAMESPACES))}")
        return NAMESPACES[prefix](ident)
    specs = all_specs()
    if name not in specs:
        raise unknown("dataset", name, specs)
    return specs[name]


def file_name(name: str) -> str:
    """``name`` as a path component: a catalogue id's ``/`` (``minari:mujoco/pusher/expert-v0``)
    becomes ``__``; any other name is kept as it is (and refused by the path checks if it would
    leave its directory)."""
    return name.replace("/", "__") if catalogue_id(name) else name


def base_names() -> list[str]:
    """Every dataset stored in its own right (not a derived variant)."""
    return [name for name, spec in all_specs().items() if not spec.base]


def resolve_names(patterns: list[str]) -> list[str]:
    """Expand names and globs (``keytodoor-*``) into registered names, in order, without repeats.

    A glob matches derived variants only if it names them (``*-sparse``).
    """
    specs = all_specs()
    out: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            pool = specs if pattern.endswith(SPARSE) else base_names()
            matches = sorted(fnmatch.filter(pool, pattern))
            if not matches:
                raise UsageError(f"no dataset matches '{pattern}' (see 'offbench list datasets')")
        else:
            matches = [get_spec(pattern).name]
        out.extend(m for m in matches if m not in out)
    return out


def register_local(entries: dict[str, dict[str, Any]]) -> Path:
    """Add or replace entries in ``$OFFBENCH_HOME/local-datasets.toml`` (written atomically)."""
    path = local_registry_path()
    try:
        tables = tomlfile.read(path) if path.exists() else {}
    except tomlfile.TOMLDecodeError as e:
        raise OffbenchError(f"cannot read {path}: {e}; repair or move it before registering more") from None
    tables.update(entries)
    lines = ["# Datasets made or registered on this machine (`offbench generate`, `offbench register`); read with "
             "datasets.toml.", ""]
    for name, table in tables.items():
        lines.append(f'["{name}"]')
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        lines.append("")
    write_text_atomic(path, "\n".join(lines))
    return path


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(str(v))
