"""The dataset cache: fetch (build and store), load, describe and list datasets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from offbench import __version__
from offbench.data import store
from offbench.data.dataset import Dataset
from offbench.data.sources import get_source
from offbench.data.spec import all_specs, get_spec
from offbench.errors import OffbenchError
from offbench.paths import cache_root, inside


def dataset_path(name: str) -> Path:
    """Where the canonical file of dataset ``name`` lives (whether or not it exists)."""
    return inside(cache_root(), "datasets", f"{get_spec(name).name}.hdf5")


def is_cached(name: str) -> bool:
    return dataset_path(name).is_file()


def fetch(name: str, force: bool = False) -> Path:
    """Make dataset ``name`` available in the cache and return its path.

    Already cached: nothing is done (unless ``force``). Otherwise the source builds the arrays,
    their ``content_sha256`` is checked against ``datasets.toml`` when it pins one, and only then
    is the canonical file written (atomically). On any failure the cache is left as it was.
    """
    spec = get_spec(name)
    path = dataset_path(name)
    if path.is_file() and not force:
        return path
    arrays, attrs = get_source(spec.source)(spec)
    digest = store.content_sha256(arrays)
    if spec.content_sha256 and digest != spec.content_sha256:
        raise OffbenchError(
            f"{name}: content sha256 {digest[:16]}... differs from the pinned {spec.content_sha256[:16]}...; not cached"
        )
    attrs = {**attrs, "name": spec.name, "source": spec.source, "content_sha256": digest,
             "offbench_version": __version__,
             "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    store.write(path, arrays, attrs)
    return path


def load(name: str, fetch_missing: bool = True) -> Dataset:
    """Load dataset ``name`` from the cache (fetching it first if needed and allowed)."""
    path = dataset_path(name)
    if not path.is_file():
        if not fetch_missing:
            raise OffbenchError(f"{name} is not cached; run 'offbench fetch {name}'")
        fetch(name)
    arrays, attrs = store.read(path)
    return Dataset.from_arrays(arrays, name=name, attrs=attrs)


def _space_repr(data: Dataset) -> tuple[str, str]:
    obs = f"Box({data.observations.dtype}, shape={data.obs_shape})"
    if data.discrete_actions:
        return obs, f"Discrete({data.action_dim})"
    return obs, f"Box({data.actions.dtype}, shape={tuple(data.actions.shape[1:])})"


def info(name: str) -> dict[str, Any]:
    """A dataset's facts: registry entry, and when cached its counts, returns, spaces and digest."""
    spec = get_spec(name)
    path = dataset_path(name)
    facts: dict[str, Any] = {
        "name": spec.name, "cached": path.is_file(), "path": str(path), "domain": spec.domain,
        "source": spec.source, "env": spec.env, "description": spec.description,
        "episodes": None, "transitions": None, "return_min": None, "return_mean": None,
        "return_max": None, "observation_space": None, "action_space": None,
        "content_sha256": spec.content_sha256 or None, "size_bytes": None, "created": None,
    }
    if facts["cached"]:
        data = load(name, fetch_missing=False)
        facts.update(data.summary())
        facts["observation_space"], facts["action_space"] = _space_repr(data)
        facts["content_sha256"] = data.attrs.get("content_sha256")
        facts["created"] = data.attrs.get("created")
        facts["size_bytes"] = path.stat().st_size
    return facts


def list_datasets() -> list[dict[str, Any]]:
    """One row per registered dataset: name, domain, source, cached, size on disk."""
    rows = []
    for name, spec in all_specs().items():
        path = dataset_path(name)
        rows.append({"name": name, "domain": spec.domain, "source": spec.source,
                     "cached": path.is_file(), "size_bytes": path.stat().st_size if path.is_file() else None,
                     "description": spec.description})
    return rows
