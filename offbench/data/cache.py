"""The dataset cache: fetch (build and store), load, describe and list datasets.

Layout under the cache root: ``datasets/<name>.hdf5`` canonical files, and ``downloads/<source>/``
the upstream files as downloaded (each with a ``.json`` record of URL, size and sha256), kept so
that a rebuild (``--force``) needs no network. A ``-sparse`` variant has no file of its own: it is
derived from its base dataset's file when loaded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from offbench import __version__
from offbench.data import store
from offbench.data.dataset import Dataset
from offbench.data.download import Cancelled
from offbench.data.sources import FetchContext, get_source
from offbench.data.spec import DatasetSpec, all_specs, file_name, get_spec
from offbench.data.variants import delayed_rewards
from offbench.errors import OffbenchError, UsageError
from offbench.paths import cache_root, inside


def file_for(stored_name: str) -> Path:
    """The canonical file of a stored dataset, by name (registered or not yet)."""
    return inside(cache_root(), "datasets", f"{file_name(stored_name)}.hdf5")


def dataset_path(name: str) -> Path:
    """Where the canonical file of dataset ``name`` lives (whether or not it exists)."""
    return file_for(get_spec(name).stored_as)


def save(name: str, source: str, arrays: dict[str, Any], attrs: dict[str, Any], pinned: str = "") -> str:
    """Write ``arrays`` as the canonical file of ``name`` (atomically) with the provenance every
    cache file carries; return their ``content_sha256``. With ``pinned``, a different digest is
    an error and nothing is written."""
    digest = store.content_sha256(arrays)
    if pinned and digest != pinned:
        where = f" (from {attrs['origin']})" if attrs.get("origin") else ""
        raise OffbenchError(f"{name}: content sha256 {digest[:16]}... differs from the pinned "
                            f"{pinned[:16]}...{where}; not cached")
    attrs = {**attrs, "name": name, "source": source, "content_sha256": digest, "offbench_version": __version__,
             "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    store.write(file_for(name), arrays, attrs)
    return digest


def is_cached(name: str) -> bool:
    return dataset_path(name).is_file()


def fetch(name: str, force: bool = False, mirror: str | tuple[str, ...] | None = None, local: Path | None = None,
          workers: int = 4, progress: Any = None) -> Path:
    """Make dataset ``name`` available in the cache and return its path.

    Already cached: nothing is done (unless ``force``). Otherwise the source downloads (from the
    ``mirror`` or mirrors if given, tried in order) or imports (``local``: a file or directory copied from elsewhere) the
    data and converts it; the arrays' ``content_sha256`` is checked against ``datasets.toml`` when
    it pins one, and only then is the canonical file written (atomically). On any failure the
    cache holds no file under the dataset's name that was not there before.
    """
    spec = get_spec(name)
    if spec.base:
        return fetch(spec.base, force, mirror, local, workers, progress)
    path = dataset_path(name)
    if path.is_file() and not force and local is None:
        return path
    ctx = FetchContext(downloads=inside(cache_root(), "downloads"), mirror=mirror,
                       local=local, workers=workers, progress=progress)
    failed: list[tuple[str, OffbenchError]] = []
    for source in sources_of(spec):  # each source in turn until one gives the data (and the pinned digest)
        try:
            arrays, attrs = get_source(source.source)(source, ctx)
            save(spec.name, source.source, arrays, attrs, pinned=spec.content_sha256)
            return path
        except Cancelled:
            raise
        except OffbenchError as e:
            failed.append((source.source, e))
        except KeyError as e:  # the entry lacks a parameter its source needs
            failed.append((source.source, OffbenchError(
                f"datasets.toml: [{name}] lacks {e.args[0]!r}, which source '{source.source}' needs")))
        except (TypeError, ValueError) as e:  # a parameter of the wrong type
            failed.append((source.source, OffbenchError(
                f"datasets.toml: [{name}] has a parameter source '{source.source}' cannot use ({e})")))
    if len(failed) == 1:
        raise failed[0][1]
    raise OffbenchError(f"{name}: none of its {len(failed)} sources gave it: "
                        + "; ".join(f"[{src}] {err}" for src, err in failed))


def sources_of(spec: DatasetSpec) -> list[DatasetSpec]:
    """Where a dataset's data can come from, in the order tried: its own ``source``, then each
    table of its ``fallbacks`` (a ``source`` and the parameters that differ, e.g. ``base_url``)."""
    own = {k: v for k, v in spec.params.items() if k != "fallbacks"}
    out = [dataclasses.replace(spec, params=own)]
    for alt in spec.params.get("fallbacks", []):
        if not isinstance(alt, dict) or "source" not in alt:
            raise OffbenchError(f"datasets.toml: [{spec.name}] fallbacks: each needs a 'source' (got {alt!r})")
        params = {k: v for k, v in own.items() if k != "mirrors"}
        params.update({k: v for k, v in alt.items() if k != "source"})
        out.append(dataclasses.replace(spec, source=alt["source"], params=params))
    return out


@dataclasses.dataclass(frozen=True)
class Fetched:
    """The outcome of fetching one dataset: its cache path, or the error that stopped it."""

    name: str
    path: Path | None
    already_cached: bool
    error: OffbenchError | None = None


def fetch_many(names: list[str], force: bool = False, mirror: str | tuple[str, ...] | None = None,
               local: Path | None = None, workers: int = 4, progress: Any = None) -> list[Fetched]:
    """Fetch several datasets, ``workers`` at a time (downloads overlap); one failure does not stop
    the others. Variants resolve to their base dataset, fetched once."""
    check_local_import(names, local)
    stored = list(dict.fromkeys(get_spec(n).stored_as for n in names))

    def one(name: str) -> Fetched:
        was = is_cached(name) and not force and local is None
        try:
            return Fetched(name, fetch(name, force, mirror, local, workers, progress), was)
        except OffbenchError as e:
            return Fetched(name, None, was, e)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(stored)))) as pool:
        return list(pool.map(one, stored))


def load(name: str, fetch_missing: bool = True) -> Dataset:
    """Load dataset ``name`` from the cache (fetching it first if needed and allowed)."""
    spec = get_spec(name)
    path = dataset_path(name)
    if not path.is_file():
        if not fetch_missing:
            raise OffbenchError(f"{name} is not cached (no {path}); run 'offbench fetch {name}' where "
                                f"OFFBENCH_HOME is the one this process sees")
        fetch(name)
    arrays, attrs = store.read(path)
    pinned = get_spec(spec.stored_as).content_sha256
    if pinned and attrs.get("content_sha256") != pinned:
        raise OffbenchError(f"the cached {spec.stored_as} differs from the data datasets.toml pins (made by another "
                            f"offbench version?); run 'offbench fetch --force {spec.stored_as}'")
    data = Dataset.from_arrays(arrays, name=spec.stored_as, attrs=attrs)
    if spec.reward == "delayed":
        data = delayed_rewards(data, spec.name)
    return data


def run_spec(name: str) -> DatasetSpec:
    """The spec with reference returns filled in from the cached file where the registry has none
    (Minari datasets carry theirs in their metadata), and with ``env_from_data`` the evaluation
    environment the data's metadata names (its id, keyword arguments and episode cap)."""
    spec = get_spec(name)
    from_data = bool(spec.params.get("env_from_data"))
    if spec.ref_min_return is not None and spec.ref_max_return is not None and not from_data:
        return spec
    path = dataset_path(name)
    attrs = store.read_attrs(path) if path.is_file() else {}
    if from_data and attrs.get("env_spec"):
        env = json.loads(attrs["env_spec"])
        spec = dataclasses.replace(spec, env=env["id"], env_kwargs=dict(env.get("kwargs") or {}),
                                   max_episode_steps=int(env.get("max_episode_steps") or spec.max_episode_steps))
    if spec.ref_min_return is not None and spec.ref_max_return is not None:
        return spec
    lo, hi = attrs.get("ref_min_return"), attrs.get("ref_max_return")
    if lo is None or hi is None:
        raise OffbenchError(f"{name}: no reference returns in datasets.toml nor in the cached data "
                            f"({'not cached' if not path.is_file() else 'its metadata has none'}); "
                            "add ref_min_return and ref_max_return to its datasets.toml entry")
    targets = spec.target_returns or ((float(attrs["target_return"]),) if "target_return" in attrs else ())
    return dataclasses.replace(spec, ref_min_return=float(lo), ref_max_return=float(hi), target_returns=targets)


def _space_repr(data: Dataset) -> tuple[str, str]:
    obs = f"Box({data.observations.dtype}, shape={data.obs_shape})"
    if data.discrete_actions:
        return obs, f"Discrete({data.action_dim})"
    return obs, f"Box({data.actions.dtype}, shape={tuple(data.actions.shape[1:])})"


PROVENANCE = ("origin", "file_sha256", "downloaded", "minari_id", "ogbench_id", "recipe", "checkpoints_read",
              "observation_keys")


def info(name: str) -> dict[str, Any]:
    """A dataset's facts: registry entry, and when cached its counts, returns, spaces and provenance."""
    spec = get_spec(name)
    path = dataset_path(name)
    facts: dict[str, Any] = {
        "name": spec.name, "cached": path.is_file(), "path": str(path), "domain": spec.domain,
        "source": spec.source, "env": spec.env, "description": spec.description,
        "derived_from": spec.base or None, "reward": spec.reward,
        "episodes": None, "transitions": None, "return_min": None, "return_mean": None,
        "return_max": None, "observation_space": None, "action_space": None,
        "ref_min_return": spec.ref_min_return, "ref_max_return": spec.ref_max_return,
        "content_sha256": spec.content_sha256 or None, "size_bytes": None, "created": None,
        "origin": spec.params.get("minari_id") or spec.params.get("file") or None,
    }
    if facts["cached"]:
        data = load(name, fetch_missing=False)
        facts.update(data.summary())
        facts["observation_space"], facts["action_space"] = _space_repr(data)
        facts["content_sha256"] = data.attrs.get("content_sha256") if not spec.base else None
        facts["created"] = data.attrs.get("created")
        facts["source"] = data.attrs.get("source", spec.source)  # the one that gave the cached file
        facts["size_bytes"] = path.stat().st_size
        resolved = run_spec(name)
        facts["ref_min_return"], facts["ref_max_return"] = resolved.ref_min_return, resolved.ref_max_return
        facts.update({k: data.attrs[k] for k in PROVENANCE if k in data.attrs})
    return facts


def list_datasets() -> list[dict[str, Any]]:
    """One row per stored dataset (variants are not listed): name, domain, source, cached, size."""
    rows = []
    for name, spec in all_specs().items():
        if spec.base:
            continue
        path = dataset_path(name)
        rows.append({"name": name, "domain": spec.domain, "source": spec.source,
                     "cached": path.is_file(), "size_bytes": path.stat().st_size if path.is_file() else None,
                     "description": spec.description})
    return rows


def check_local_import(names: list[str], local: Path | None) -> None:
    """``--from-file``/``--from-dir`` name one dataset's data: refuse it with several names."""
    if local is not None and len(names) != 1:
        raise UsageError(f"--from-file/--from-dir import one dataset, but {len(names)} were named")
    if local is not None:
        spec = get_spec(names[0])
        source = get_spec(spec.base).source if spec.base else spec.source
        if not any(getattr(get_source(s.source), "imports_local", True) for s in sources_of(get_spec(spec.stored_as))):
            raise UsageError(f"{names[0]} is made by offbench itself (source '{source}'); --from-file/--from-dir "
                             f"import downloaded datasets only")
