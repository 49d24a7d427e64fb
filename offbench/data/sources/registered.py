"""Datasets a user registered from their own files (``offbench register``): a D4RL-style HDF5
file, an ``.npz`` with the D4RL keys, or a Minari dataset directory, read from where it lies.

The ``.npz`` layout: ``observations`` (N, ...), ``actions`` (N, act) floats or (N,) integers,
``rewards`` (N,), ``terminals`` (N,) and optionally ``timeouts`` (N,) and ``next_observations``;
an episode ends at a terminal or a timeout. Fetching a registered dataset whose cache file is gone
reads the registered path again; its content digest must be the one registered.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from offbench.data.sources.base import SOURCES, Arrays, FetchContext
from offbench.data.sources.d4rl import episode_starts, read_hdf5
from offbench.data.spec import DatasetSpec
from offbench.errors import OffbenchError, UsageError

NPZ_KEYS = ("observations", "actions", "rewards", "terminals")


def read_npz(path: Path) -> Arrays:
    """Canonical arrays from an ``.npz`` with the D4RL keys (see the module docstring), or a
    one-line error naming the file and what is wrong. Object arrays are refused (never unpickled)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise OffbenchError(f"{path}: not a dataset .npz, missing {', '.join(missing)} (keys: "
                                    f"{', '.join(f.files) or 'none'})")
            raw = {k: f[k] for k in (*NPZ_KEYS, "timeouts", "next_observations") if k in f.files}
    except MemoryError:  # a header that declares more rows than the file could hold
        raise OffbenchError(f"{path}: an array declares more data than memory holds; not a dataset .npz") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, NotImplementedError, zlib.error) as e:
        raise OffbenchError(f"{path}: not a readable .npz ({e})") from None  # (a damaged zip header: any of these)
    for k, a in raw.items():
        if a.dtype.kind not in "biuf":
            raise OffbenchError(f"{path}: '{k}' has dtype {a.dtype}, expected real numbers")
    if raw["observations"].ndim == 0:
        raise OffbenchError(f"{path}: 'observations' is a single value, not one row per step")
    n = len(raw["observations"])
    for k, a in raw.items():
        if a.ndim == 0 or len(a) != n:
            raise OffbenchError(f"{path}: '{k}' has {len(a) if a.ndim else 0} rows, 'observations' {n}")
    obs = raw["observations"]
    if obs.dtype.kind not in "fiu":
        raise OffbenchError(f"{path}: 'observations' has dtype {obs.dtype}, expected numbers")
    actions = raw["actions"]
    if actions.dtype.kind in "iu" and actions.ndim == 1:
        actions = actions.astype(np.int64)
    elif actions.dtype.kind == "f" and actions.ndim == 2:
        actions = actions.astype(np.float32)
    else:
        raise OffbenchError(f"{path}: 'actions' must be (N, dim) floats or (N,) integers, got {actions.dtype} "
                            f"{actions.shape}")
    fdtype = np.float32 if obs.dtype.kind == "f" else obs.dtype
    arrays = {"observations": obs.astype(fdtype, copy=False), "actions": actions,
              "rewards": raw["rewards"].astype(np.float32).reshape(n),
              "terminals": raw["terminals"].astype(bool).reshape(n),
              "timeouts": raw.get("timeouts", np.zeros(n, bool)).astype(bool).reshape(n)}
    if "next_observations" in raw:
        if raw["next_observations"].shape != obs.shape:
            raise OffbenchError(f"{path}: 'next_observations' has shape {raw['next_observations'].shape}, "
                                f"'observations' {obs.shape}")
        arrays["next_observations"] = raw["next_observations"].astype(fdtype, copy=False)
    for k, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise OffbenchError(f"{path}: '{k}' holds NaN or infinite values")
    if n == 0:
        raise OffbenchError(f"{path}: the dataset has no transitions")
    arrays["episode_starts"] = episode_starts(arrays["terminals"], arrays["timeouts"])
    return arrays


def read_input(path: Path) -> tuple[Arrays, str]:
    """The arrays of a user's dataset and its kind (``hdf5``, ``npz``, ``minari``)."""
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if path.is_dir():
        from offbench.data.sources.minari import data_dir, open_dataset, to_arrays

        data = data_dir(path)
        return to_arrays(open_dataset(data), str(data)), "minari"
    if path.suffix in (".hdf5", ".h5"):
        return read_hdf5(path), "hdf5"
    if path.suffix == ".npz":
        return read_npz(path), "npz"
    raise UsageError(f"{path}: expected a D4RL-style .hdf5 file, an .npz with the D4RL keys, or a Minari "
                     "dataset directory")


@SOURCES.register("registered")
def build(spec: DatasetSpec, ctx: FetchContext) -> tuple[Arrays, dict[str, Any]]:
    """Read the registered file again (``--from-file``/``--from-dir``: another copy of it)."""
    path = ctx.require_local(spec, "the registered file") if ctx.local is not None else Path(spec.params["path"])
    if not path.exists():
        raise OffbenchError(f"{spec.name} was registered from {path}, which is gone; register it again "
                            f"('offbench register {spec.name} ... --force') or fetch it --from-file a copy")
    arrays, kind = read_input(path)
    return arrays, {"origin": str(path.resolve()), "input_kind": kind}
