"""OGBench (Park et al. 2025) single-task datasets, loaded with the ``ogbench`` package's own
loader and reward relabelling (``pip install 'offbench[ogbench]'``).

A dataset is named by its OGBench id, ``ogbench:<family>-<size>-<type>-singletask[-taskN]-v0``
(``ogbench:pointmaze-medium-navigate-singletask-task1-v0``, ``ogbench:cube-single-play-singletask-v0``:
the default task), or by a short name of ``datasets.toml`` (``antmaze-large-navigate``, ...).
As in ``ogbench.make_env_and_datasets``, the evaluation environment is the id without its dataset
type (``pointmaze-medium-singletask-task1-v0``) and the data file is the id without
``singletask``/``taskN`` (``pointmaze-medium-navigate-v0.npz``, from OGBench's server or a mirror).
The file is read with ``ogbench.utils.load_dataset`` (regular layout: next observations from the
trajectories) and relabelled with ``ogbench.relabel_utils.relabel_dataset``: reward 0 where the
task is solved and -1 elsewhere (manipulation: minus the unsolved subtasks), ``masks`` 0 where
solved. offbench keeps OGBench's trajectories as its episodes (a trajectory goes on after the task
is solved), marks the solved steps terminal (OGBench's masks: no bootstrapping from them) and the
trajectories' last steps as timeouts. The score is OGBench's: the success rate (%) of the
evaluation episodes (the environment's ``info["success"]`` at any step).
"""

from __future__ import annotations

import difflib
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from offbench.data.download import discard, download
from offbench.data.sources.base import SOURCES, Arrays, FetchContext
from offbench.data.spec import NAMESPACES, DatasetSpec
from offbench.errors import OffbenchError, UsageError

DATASET_URL = "https://rail.eecs.berkeley.edu/datasets/ogbench"
SUCCESS_SCORE = "success rate (%)"
#: The dataset types OGBench publishes per environment family (OGBench paper, Table 1).
TYPES = {"pointmaze": ("navigate", "stitch"), "antmaze": ("navigate", "stitch", "explore"),
         "humanoidmaze": ("navigate", "stitch"), "antsoccer": ("navigate", "stitch"),
         "cube": ("play", "noisy"), "scene": ("play", "noisy"), "puzzle": ("play", "noisy")}


def require_ogbench() -> Any:
    try:
        import ogbench
    except ImportError:
        raise UsageError("OGBench datasets need the ogbench package: pip install 'offbench[ogbench]'") from None
    return ogbench


def split_id(dataset_id: str) -> tuple[str, str]:
    """(evaluation environment id, data file stem) of an OGBench single-task dataset id."""
    parts = dataset_id.split("-")
    if "singletask" not in parts or parts.index("singletask") < 2:
        raise UsageError(f"ogbench:{dataset_id}: offbench trains on OGBench's single-task datasets, "
                         f"'<family>-<size>-<type>-singletask[-taskN]-v0' (e.g. "
                         "ogbench:pointmaze-medium-navigate-singletask-task1-v0)")
    pos = parts.index("singletask")
    return "-".join(parts[: pos - 1] + parts[pos:]), "-".join(parts[:pos] + parts[-1:])


@lru_cache(maxsize=1)
def catalogue() -> tuple[str, ...]:
    """Every single-task dataset id the installed ogbench can evaluate: its registered single-task
    environments, each with its family's dataset types."""
    require_ogbench()
    import gymnasium as gym

    out = []
    for env_id in gym.registry:
        parts = env_id.split("-")
        if "singletask" not in parts or parts.index("singletask") < 2:
            continue
        pos = parts.index("singletask")
        family = parts[1] if parts[0] == "visual" else parts[0]
        out += ["-".join(parts[:pos] + [t] + parts[pos:]) for t in TYPES.get(family, ())]
    return tuple(sorted(out))


def spec_for_id(dataset_id: str) -> DatasetSpec:
    """The spec of ``ogbench:<dataset_id>``, from the id and the installed ogbench's registry."""
    env_id, stem = split_id(dataset_id)
    if dataset_id not in catalogue():
        close = difflib.get_close_matches(dataset_id, catalogue(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(f'ogbench:{c}' for c in close)}?" if close else ""
        raise UsageError(f"unknown OGBench dataset 'ogbench:{dataset_id}'{hint}")
    import gymnasium as gym

    steps = gym.spec(env_id).max_episode_steps or 1000
    return DatasetSpec(
        name=f"ogbench:{dataset_id}", domain="ogbench", source="ogbench", env=env_id, max_episode_steps=int(steps),
        ref_min_return=None, ref_max_return=None, target_returns=(), score=SUCCESS_SCORE,
        description=f"OGBench {dataset_id}",
        params={"ogbench_id": dataset_id, "file": f"{stem}.npz", "base_url": DATASET_URL, "score_by": "success"})


NAMESPACES["ogbench"] = spec_for_id


@SOURCES.register("ogbench")
def build(spec: DatasetSpec, ctx: FetchContext) -> tuple[Arrays, dict[str, Any]]:
    """Download (or take ``--from-file``/``--from-dir``) the data file, load and relabel it with ogbench."""
    require_ogbench()
    from ogbench.relabel_utils import relabel_dataset
    from ogbench.utils import load_dataset

    from offbench.envs.factory import make_gym_env

    name = spec.params["file"]
    downloaded = None
    if ctx.local is not None:
        path = ctx.require_local(spec, f"OGBench's {name}")
        path = path / name if path.is_dir() else path
        origin = str(path.resolve())
    else:
        downloaded = download(ctx.downloads_of(spec, name), ctx.progress)
        path, origin = downloaded.path, downloaded.url
    visual = "visual" in spec.env or "powderworld" in spec.env
    try:
        raw = load_dataset(str(path), ob_dtype=np.uint8 if visual else np.float32, compact_dataset=False, add_info=True)
        if "qpos" not in raw:
            raise KeyError("qpos")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        if downloaded is not None:
            discard(downloaded.path)  # fetched again next time
        raise OffbenchError(f"{path}: not an OGBench dataset file ({type(e).__name__}: {e}); not cached") from None
    env = make_gym_env(spec.env, "ogbench")
    try:
        relabel_dataset(spec.env, env, raw)
    finally:
        env.close()
    arrays = canonical(raw, Path(path))
    returns = np.add.reduceat(arrays["rewards"].astype(np.float64), arrays["episode_starts"])
    attrs = {"origin": origin, "ogbench_id": spec.params.get("ogbench_id", ""),
             "ref_min_return": float(returns.min()), "ref_max_return": float(returns.max()),
             "target_return": float(returns.max())}
    return arrays, attrs


def canonical(raw: dict[str, np.ndarray], path: Path) -> Arrays:
    """offbench's arrays from ogbench's relabelled regular dataset (see the module docstring)."""
    n = len(raw["observations"])
    if n == 0:
        raise OffbenchError(f"{path}: the dataset has no transitions")
    ends = raw["terminals"].astype(bool)  # ogbench: the last transition of each trajectory
    solved = raw["masks"] == 0
    for k in ("observations", "next_observations", "actions", "rewards"):
        if raw[k].dtype.kind == "f" and not np.isfinite(raw[k]).all():
            raise OffbenchError(f"{path}: '{k}' holds NaN or infinite values")
    actions = raw["actions"]
    actions = actions.astype(np.int64) if actions.dtype.kind in "iu" else actions.astype(np.float32)
    return {"observations": raw["observations"], "next_observations": raw["next_observations"],
            "actions": actions, "rewards": raw["rewards"].astype(np.float32),
            "terminals": solved, "timeouts": ends & ~solved,
            "episode_starts": np.concatenate([[0], np.flatnonzero(ends[:-1]) + 1]).astype(np.int64)}
