"""The canonical cache file: one HDF5 file per dataset, flat arrays plus episode starts.

Layout (h5py): datasets ``observations`` (N, ...), ``actions`` (N, ...), ``rewards`` (N,) float32,
``terminals`` (N,) bool, ``timeouts`` (N,) bool, ``episode_starts`` (E,) int64, and optionally
``next_observations`` (N, ...) and, for frame-stacked data (Atari), ``stack_indices`` (N, stack)
int32: the rows of each state's frames, -1 for a zero frame. File attributes hold provenance: ``name``, ``source``,
``content_sha256``, ``offbench_version``, ``created``, plus source-specific keys.
Files are written to a temporary name and renamed when complete, so a file under its final name
is always whole.
"""

from __future__ import annotations

import contextlib

import hashlib
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from offbench.errors import OffbenchError
from offbench.paths import atomic_path

REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts", "episode_starts")
OPTIONAL = ("next_observations", "stack_indices")
PER_STEP = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations", "stack_indices")


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """A digest over the arrays' names, dtypes, shapes and bytes (little-endian, C order).

    Identical whenever the data are identical, whatever file or compression holds them.
    """
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{key}|{a.dtype.str}|{a.shape}\n".encode())
        flat = a.reshape(-1).view(np.uint8)
        step = 1 << 24
        for i in range(0, flat.size, step):
            h.update(flat[i : i + step].data)
    return h.hexdigest()


def validate(arrays: dict[str, np.ndarray], where: str) -> None:
    """Check the canonical keys, lengths and episode starts; raise a one-line error naming ``where``."""
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise OffbenchError(f"{where}: missing arrays {', '.join(missing)}")
    n = len(arrays["observations"])
    for key in PER_STEP:
        if key in arrays and len(arrays[key]) != n:
            raise OffbenchError(f"{where}: '{key}' has {len(arrays[key])} rows, observations has {n}")
    for key in ("rewards", "terminals", "timeouts"):
        if arrays[key].ndim != 1:
            raise OffbenchError(f"{where}: '{key}' must be 1-D, has shape {arrays[key].shape}")
    for key in ("observations", "actions", "rewards", "next_observations"):
        a = arrays.get(key)
        if a is not None and a.dtype.kind == "f" and not np.isfinite(a).all():
            row = int(np.argwhere(~np.isfinite(a.reshape(len(a), -1)).any(axis=1))[0, 0])
            raise OffbenchError(f"{where}: '{key}' holds NaN or infinity (first in row {row})")
    starts = arrays["episode_starts"]
    if n and (starts.ndim != 1 or len(starts) == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0)
              or starts[-1] >= n):
        raise OffbenchError(f"{where}: 'episode_starts' must rise strictly from 0 below {n}")


def write(path: Path, arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
    """Write the canonical file atomically (temporary name, then rename)."""
    validate(arrays, str(path))
    try:
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                for key, a in arrays.items():
                    f.create_dataset(key, data=a, compression="gzip", compression_opts=1,
                                     chunks=True if a.size else None)
                for key, value in attrs.items():
                    f.attrs[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)
    except OSError as e:
        raise OffbenchError(f"cannot write {path}: {e.strerror or e} (disk full?); nothing was cached") from None


def read_attrs(path: Path) -> dict[str, Any]:
    """The attributes (provenance) of a canonical file, without reading its arrays."""
    try:
        with h5py.File(path, "r") as f:
            return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    except (OSError, MemoryError) as e:
        raise unreadable(path, e) from None


#: Room beyond a file's arrays that reading it takes (HDF5's chunk cache and gzip buffers).
READ_MARGIN = 64 << 20


def unreadable(path: Path, error: BaseException) -> OffbenchError:
    """The error for a canonical file that failed to read: out of memory (the arrays it holds, and
    :data:`READ_MARGIN`, cannot be allocated now; the file is kept) or a damaged file (delete it).
    A decompression filter that fails for want of memory looks like a damaged file to HDF5."""
    need = 0
    with contextlib.suppress(Exception):
        with h5py.File(path, "r") as f:
            need = sum(int(np.prod(d.shape)) * d.dtype.itemsize for d in f.values() if isinstance(d, h5py.Dataset))
    try:
        probe = np.empty(need + READ_MARGIN, np.uint8)
        del probe
    except MemoryError:
        return OffbenchError(f"{path}: out of memory reading it ({need / 2**20:.0f} MiB of arrays); free memory or "
                             "run fewer --workers (the file is kept)")
    return OffbenchError(f"{path}: not a readable offbench cache file ({error}); delete it and fetch again")


def read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read every array and attribute of a canonical file."""
    try:
        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in REQUIRED + OPTIONAL if k in f}
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    except (OSError, MemoryError) as e:
        arrays = {}  # whatever was read: freed before the memory probe
        raise unreadable(path, e) from None
    validate(arrays, str(path))
    return arrays, attrs
