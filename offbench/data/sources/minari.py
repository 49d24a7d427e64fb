"""Minari datasets, through minari's own API (``download_dataset``, ``load_dataset``).

The minari root is ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``) and the remote
``$MINARI_REMOTE``, as minari itself reads them. A dataset directory copied from elsewhere is
imported with ``--from-dir``. Episodes become canonical arrays: observations ``[:-1]`` and
``next_observations`` ``[1:]`` of minari's ``T+1`` observations, terminations -> ``terminals``,
truncations -> ``timeouts``; the reference returns come from the dataset's metadata.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from offbench.data.dataset import Dataset, flat_observations
from offbench.data.sources.base import SOURCES, Arrays, FetchContext
from offbench.data.spec import NAMESPACES, OWN_RANGE_SCORE, DatasetSpec
from offbench.envs.factory import env_domain, is_registered
from offbench.errors import OffbenchError, UsageError, unknown

METADATA_KEYS = ("dataset_id", "total_episodes", "total_steps", "observation_space", "action_space",
                 "minari_version", "data_format")


def data_dir(path: Path) -> Path:
    """The ``data`` directory of a minari dataset directory (or ``path`` itself if it is one)."""
    return path if (path / "metadata.json").exists() or path.name == "data" else path / "data"


def check_metadata(data: Path) -> dict[str, Any]:
    """Read ``data/metadata.json``; one-line error naming the file if it is missing or malformed."""
    meta_path = data / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise OffbenchError(f"{meta_path}: missing; not a minari dataset directory") from None
    except (OSError, ValueError) as e:
        raise OffbenchError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise OffbenchError(f"{meta_path}: expected a JSON object")
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        raise OffbenchError(f"{meta_path}: missing {', '.join(missing)}")
    return meta


def open_dataset(data: Path) -> Any:
    """A ``minari.MinariDataset`` for a checked ``data`` directory."""
    import minari

    check_metadata(data)
    try:
        return minari.MinariDataset(data)
    except Exception as e:  # minari raises ValueError, KeyError, AssertionError, OSError...
        raise OffbenchError(f"{data}: minari cannot read this dataset ({type(e).__name__}: {e})") from None


def leaves_root(dataset_id: str) -> bool:
    """Whether ``dataset_id`` would name a path outside the minari root."""
    return ".." in dataset_id.split("/") or dataset_id.startswith("/")


def load_by_id(dataset_id: str) -> Any:
    """Load ``dataset_id`` from the minari root, downloading it from the remote when absent."""
    import minari
    from minari.storage.datasets_root_dir import get_dataset_path

    if leaves_root(dataset_id):
        raise OffbenchError(f"refusing minari id '{dataset_id}': it would leave the minari root")
    data = get_dataset_path(dataset_id) / "data"
    if not data.exists():
        try:
            with _quiet("huggingface_hub", "minari"):  # their retry logs would bury our one-line error
                minari.download_dataset(dataset_id)
        except Exception as e:  # network, remote or version errors
            raise OffbenchError(f"cannot download minari dataset {dataset_id} (remote "
                                f"{minari_remote()}): {type(e).__name__}: {e}; use --from-dir with a copy "
                                "of the dataset directory, or set MINARI_REMOTE") from None
    return open_dataset(data)


def local_ids() -> list[str]:
    """The dataset ids under the minari root."""
    import minari

    with _quiet("minari"):
        try:
            return sorted(minari.list_local_datasets())
        except Exception:  # noqa: BLE001  (an unreadable root lists nothing)
            return []


def metadata(dataset_id: str) -> dict[str, Any]:
    """A dataset's metadata: the local copy's, else the remote catalogue's (a one-line error with
    the closest ids when neither has it)."""
    from minari.storage.datasets_root_dir import get_dataset_path

    if leaves_root(dataset_id):
        raise UsageError(f"refusing minari id '{dataset_id}': it would leave the minari root")
    local = get_dataset_path(dataset_id) / "data"
    if (local / "metadata.json").is_file():
        return check_metadata(local)
    known, remote = local_ids(), {}
    with contextlib.suppress(OffbenchError):  # unreachable: the local catalogue is what we have
        remote = remote_datasets()
    if dataset_id in remote:
        return dict(remote[dataset_id])
    if not known and not remote:
        raise UsageError(f"unknown minari dataset '{dataset_id}': there are none under {local.parents[1]} and the "
                         f"remote {minari_remote()} did not answer")
    raise unknown("minari dataset", dataset_id, [*known, *remote])


def remote_datasets() -> dict[str, dict[str, Any]]:
    """The remote catalogue (``$MINARI_REMOTE``): each dataset's metadata, by id; a one-line error
    when the remote does not answer."""
    import minari

    try:
        with _quiet("huggingface_hub", "minari"):
            return dict(minari.list_remote_datasets())
    except Exception as e:  # noqa: BLE001  (network, authentication or format errors alike)
        detail = " ".join(str(e).split())[:200]
        raise OffbenchError(f"the remote Minari catalogue {minari_remote()} did not answer ({type(e).__name__}: "
                            f"{detail}); MINARI_REMOTE chooses another") from None


def env_spec_of(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The environment a dataset's metadata names for evaluation (``eval_env_spec``, else
    ``env_spec``), as a dict; None where it names none."""
    raw = meta.get("eval_env_spec") or meta.get("env_spec")
    try:
        spec = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    return spec if isinstance(spec, dict) and spec.get("id") else None


def remote_catalogue() -> list[dict[str, Any]]:
    """The remote catalogue as rows: each dataset's ``minari:<id>`` name, size and environment."""
    return [{"name": f"minari:{dataset_id}", "episodes": meta.get("total_episodes"), "steps": meta.get("total_steps"),
             "env": (env_spec_of(meta) or {}).get("id", "")} for dataset_id, meta in sorted(remote_datasets().items())]


def spec_for_id(dataset_id: str) -> DatasetSpec:
    """``minari:<id>``: a spec from the dataset's own metadata (the evaluation environment from its
    ``eval_env_spec`` or ``env_spec``, reference returns from ``ref_min_score``/``ref_max_score``,
    the episode cap from the env spec), with no ``datasets.toml`` entry."""
    from minari.storage.datasets_root_dir import get_dataset_path

    local = None if leaves_root(dataset_id) else get_dataset_path(dataset_id) / "data" / "metadata.json"
    stamp = local.stat().st_mtime if local is not None and local.is_file() else 0.0
    return _spec_for_id(dataset_id, stamp)


@functools.lru_cache(maxsize=64)
def _spec_for_id(dataset_id: str, stamp: float) -> DatasetSpec:
    """:func:`spec_for_id`, made once per metadata version (``stamp``: its file's mtime)."""
    meta = metadata(dataset_id)
    env_spec = env_spec_of(meta)
    if env_spec is None:
        raise OffbenchError(f"minari:{dataset_id}: its metadata names no environment to evaluate in; register it "
                            f"with 'offbench register NAME --from-dir <its directory> --env ENV_ID'")
    lo, hi = meta.get("ref_min_score"), meta.get("ref_max_score")
    return DatasetSpec(
        name=f"minari:{dataset_id}", domain=env_domain(env_spec["id"]), source="minari", env=env_spec["id"],
        env_kwargs=dict(env_spec.get("kwargs") or {}), max_episode_steps=int(env_spec.get("max_episode_steps") or 1000),
        ref_min_return=None if lo is None else float(lo), ref_max_return=None if hi is None else float(hi),
        target_returns=() if hi is None else (float(hi),),
        score="normalized score" if lo is not None and hi is not None else OWN_RANGE_SCORE,
        description=str(meta.get("description", ""))[:200], params={"minari_id": dataset_id, "by_id": True})


NAMESPACES["minari"] = spec_for_id


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: list[tuple[logging.Logger, int]] = []


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Silence the named libraries' loggers (imported first: importing one configures its logger)
    until the last of the threads using them is done (downloads run in parallel threads)."""
    global _quiet_depth, _quiet_saved
    if os.environ.get("OFFBENCH_VERBOSE"):  # offbench --verbose: show them
        yield
        return
    for name in (*loggers, "huggingface_hub.utils.logging"):  # imported lazily, it would reset its level
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
            for logger, _ in _quiet_saved:
                logger.setLevel(logging.CRITICAL)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                for logger, level in _quiet_saved:
                    logger.setLevel(level)


def minari_remote() -> str:
    return os.environ.get("MINARI_REMOTE", "hf://farama-minari")


def to_arrays(ds: Any, where: str) -> Arrays:
    """Concatenate a minari dataset's episodes into canonical arrays; a one-line error naming
    ``where`` if its files cannot be read (minari and h5py raise many kinds)."""
    try:
        return _to_arrays(ds, where)
    except OffbenchError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError, AssertionError, RuntimeError) as e:
        raise OffbenchError(f"{where}: minari cannot read its episodes ({type(e).__name__}: {e})") from None


def _to_arrays(ds: Any, where: str) -> Arrays:
    obs, nxt, act, rew, term, trunc, starts = [], [], [], [], [], [], []
    n = 0
    for ep in ds.iterate_episodes():
        o = ep.observations
        if isinstance(o, dict):
            o = flat_observations(o)
        if not isinstance(o, np.ndarray):
            raise OffbenchError(f"{where}: tuple observations are not supported (dicts of arrays are flattened)")
        t = len(ep.actions)
        if len(o) != t + 1 or len(ep.rewards) != t:
            raise OffbenchError(f"{where}: episode {ep.id} has {len(o)} observations for {t} actions")
        starts.append(n)
        n += t
        obs.append(o[:-1])
        nxt.append(o[1:])
        act.append(np.asarray(ep.actions))
        rew.append(np.asarray(ep.rewards, dtype=np.float32))
        term.append(np.asarray(ep.terminations, dtype=bool))
        trunc.append(np.asarray(ep.truncations, dtype=bool))
    if not starts:
        raise OffbenchError(f"{where}: the dataset has no episodes")
    actions = np.concatenate(act)
    actions = actions.astype(np.int64) if np.issubdtype(actions.dtype, np.integer) else actions.astype(np.float32)
    observations = np.concatenate(obs)
    fdtype = np.float32 if observations.dtype.kind == "f" else observations.dtype
    return {
        "observations": observations.astype(fdtype, copy=False),
        "next_observations": np.concatenate(nxt).astype(fdtype, copy=False),
        "actions": actions,
        "rewards": np.concatenate(rew),
        "terminals": np.concatenate(term),
        "timeouts": np.concatenate(trunc),
        "episode_starts": np.asarray(starts, dtype=np.int64),
    }


@SOURCES.register("minari")
def build(spec: DatasetSpec, ctx: FetchContext) -> tuple[Arrays, dict[str, Any]]:
    """Load the spec's ``minari_id`` (or the ``--from-dir`` copy) and convert it."""
    dataset_id = spec.params["minari_id"]
    if spec.params.get("by_id") and not is_registered(spec.env):
        raise OffbenchError(f"minari:{dataset_id}: its environment '{spec.env}' is not installed here (no installed "
                            "package registers it); install it, or evaluate elsewhere with 'offbench register NAME "
                            "--from-dir <the dataset's directory> --env ENV_ID'")
    if ctx.local is not None:
        data = data_dir(ctx.require_local(spec, "a minari dataset directory"))
        ds = open_dataset(data)
        origin = str(data.parent.resolve())
    else:
        ds = load_by_id(dataset_id)
        origin = f"minari:{dataset_id} (remote {minari_remote()})"
    where = str(data_dir(Path(ds.storage.data_path)))
    if ds.spec.dataset_id != dataset_id:
        raise OffbenchError(f"{where}: holds minari dataset '{ds.spec.dataset_id}', expected '{dataset_id}'")
    meta = ds.storage.metadata
    arrays = to_arrays(ds, where)
    attrs: dict[str, Any] = {"origin": origin, "minari_id": dataset_id, "minari_version": meta.get("minari_version", "")}
    for ours, theirs in (("ref_min_return", "ref_min_score"), ("ref_max_return", "ref_max_score")):
        if meta.get(theirs) is not None:
            attrs[ours] = float(meta[theirs])
    if spec.params.get("by_id") and "ref_max_return" not in attrs:  # no references: the data's own range
        lowest, best = Dataset.from_arrays(arrays).return_range or (0.0, 0.0)  # to_arrays refuses no episodes
        attrs.update(ref_min_return=lowest, ref_max_return=best, target_return=best)
    if isinstance(ds.action_space, gym.spaces.Discrete):
        attrs["num_actions"] = int(ds.action_space.n)
    if isinstance(ds.observation_space, gym.spaces.Dict):
        attrs["observation_keys"] = ",".join(sorted(ds.observation_space.spaces))  # the flattened order
    env_spec = env_spec_of(meta)
    if env_spec is not None:
        attrs["env_spec"] = json.dumps(env_spec)
    return arrays, attrs
