"""D4RL gym-mujoco v2 datasets: one HDF5 file per dataset, downloaded over HTTP or imported.

Upstream layout (gzip-compressed HDF5): ``observations`` (N, obs), ``next_observations``,
``actions`` (N, act), ``rewards`` (N,), ``terminals`` (N,) and ``timeouts`` (N,) flags, plus
``infos/`` and sometimes ``metadata/`` (ignored here). medium-replay stores float64; the cache
keeps float32. An episode ends at a terminal or a timeout; a last episode without either is kept
(it was cut by the dataset's size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from offbench.data.download import discard, download, sha256_file
from offbench.data.sources.base import SOURCES, Arrays, FetchContext
from offbench.data.spec import DatasetSpec
from offbench.errors import OffbenchError

KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


def episode_starts(terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """Index of each episode's first step: 0 and every step after a terminal or a timeout."""
    ends = np.flatnonzero(terminals | timeouts) + 1
    return np.concatenate([[0], ends[ends < len(terminals)]]).astype(np.int64)


def read_hdf5(path: Path, obs_dim: int | None = None, action_dim: int | None = None) -> Arrays:
    """Read and check a D4RL HDF5 file; canonical arrays, or a one-line error naming the file."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise OffbenchError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        missing = [k for k in KEYS if not isinstance(f.get(k), h5py.Dataset)]
        if missing:
            raise OffbenchError(f"{path}: not a D4RL file, missing {', '.join(missing)}")
        shapes = {k: f[k].shape for k in KEYS + ("next_observations",) if k in f}
        n = shapes["observations"][0] if shapes["observations"] else 0
        expect = {"observations": (n, obs_dim), "next_observations": (n, obs_dim), "actions": (n, action_dim),
                  "rewards": (n,), "terminals": (n,), "timeouts": (n,)}
        for k, shape in shapes.items():
            want = expect[k]
            if len(shape) != len(want) or any(w is not None and s != w for s, w in zip(shape, want)):
                shown = tuple("*" if w is None else w for w in want)
                raise OffbenchError(f"{path}: '{k}' has shape {shape}, expected {shown}")
        for k in shapes:
            if f[k].dtype.kind not in "biuf":
                raise OffbenchError(f"{path}: '{k}' has dtype {f[k].dtype}, expected real numbers")
        try:
            arrays = {
                "observations": f["observations"][()].astype(np.float32, copy=False),
                "actions": f["actions"][()].astype(np.float32, copy=False),
                "rewards": f["rewards"][()].astype(np.float32, copy=False),
                "terminals": f["terminals"][()].astype(bool, copy=False),
                "timeouts": f["timeouts"][()].astype(bool, copy=False),
            }
            if "next_observations" in f:
                arrays["next_observations"] = f["next_observations"][()].astype(np.float32, copy=False)
        except (OSError, ValueError, TypeError) as e:
            raise OffbenchError(f"{path}: cannot read its arrays ({e}); the file is damaged") from None
    for k, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise OffbenchError(f"{path}: '{k}' holds NaN or infinite values")
    arrays["episode_starts"] = episode_starts(arrays["terminals"], arrays["timeouts"])
    return arrays


@SOURCES.register("d4rl")
def build(spec: DatasetSpec, ctx: FetchContext) -> tuple[Arrays, dict[str, Any]]:
    """Download (or import with ``--from-file``) the spec's ``file`` and convert it."""
    obs_dim, act_dim = spec.params.get("observation_dim"), spec.params.get("action_dim")
    pinned = spec.params.get("file_sha256", "")
    if ctx.local is not None:
        path = ctx.require_local(spec, "a D4RL HDF5 file")
        if not path.is_file():
            raise OffbenchError(f"{spec.name}: {path} is not a file (--from-file expects a D4RL .hdf5 file)")
        digest = sha256_file(path)
        if pinned and digest != pinned:
            raise OffbenchError(f"{path}: sha256 {digest[:16]}... differs from the pinned {pinned[:16]}...; not cached")
        arrays = read_hdf5(path, obs_dim, act_dim)
        return arrays, {"origin": str(path.resolve()), "file_sha256": digest}
    got = download(ctx.downloads_of(spec, spec.params["file"], pinned), ctx.progress)
    try:
        arrays = read_hdf5(got.path, obs_dim, act_dim)
    except OffbenchError as e:
        discard(got.path)
        raise OffbenchError(f"{e} (downloaded from {got.url}; discarded)") from None
    return arrays, {"origin": got.url, "file_sha256": got.sha256, "downloaded": got.fetched}
