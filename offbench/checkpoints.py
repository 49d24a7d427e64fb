"""Checkpoints: one file per seed with everything needed to resume it exactly (the algorithm's
state, the random number generators, the step and the training time so far), written atomically.

Seeds trained together save one file each, one after the other; a process killed between two of
them leaves the group's seeds at two steps. So each seed also keeps the checkpoint before its
latest (``checkpoint.previous.pt``), and the group resumes together from the latest step all its
seeds have (:func:`shared_step`): exactly where it would have been had it not stopped.
"""

from __future__ import annotations

import os

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from offbench.errors import OffbenchError
from offbench.paths import atomic_path

if TYPE_CHECKING:
    from offbench.algos.base import Algorithm


CHECKPOINT_FORMAT = 2  # one file per seed; seed-batched algorithms store their seed's slice


def save_checkpoints(paths: list[Path], algo: Algorithm, step: int, rngs: list[np.random.Generator],
                     seconds: float = 0.0) -> None:
    """One checkpoint per seed, each enough to resume that seed alone or with any others
    (``seconds``: training time up to ``step``, over every part of an interrupted run)."""
    for path, state, rng in zip(paths, algo.seed_states(), rngs):
        ckpt = {"format": CHECKPOINT_FORMAT, "step": step, "train_seconds": seconds, "algo": state,
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),  # the global generators: used by plain (plug-in) algorithms
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        try:
            with atomic_path(path) as tmp:
                torch.save(ckpt, tmp)
                if path.exists():
                    os.replace(path, previous(path))
        except (OSError, RuntimeError) as e:  # torch's writer reports a failed write as a RuntimeError
            reason = e.strerror if isinstance(e, OSError) and e.strerror else "the write failed"
            raise OffbenchError(f"cannot write {path} ({reason}): disk full or over a file-size limit? The "
                                "previous checkpoint is kept: free space and run the same command to resume") from None


def previous(path: Path) -> Path:
    """Where the checkpoint before the latest one at ``path`` is kept."""
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def resume_points(path: Path) -> dict[int, Path]:
    """The steps a seed can resume from (its latest checkpoint's and the one before), each with
    its file."""
    return {int(load_checkpoint(p, mmap=True)["step"]): p  # mapped: the weights are not read
            for p in (previous(path), path) if p.is_file()}


def checkpoint_step(path: Path) -> int:
    """The latest step the seed whose checkpoint is at ``path`` can resume from (0 without one)."""
    return max(resume_points(path), default=0)


def shared_step(paths: list[Path]) -> int | None:
    """The latest step from which every seed of ``paths`` can resume (0: none has a checkpoint);
    None if they share none (seeds that never trained together)."""
    points = [set(resume_points(p)) for p in paths]
    if not any(points):
        return 0
    shared = set.intersection(*points)
    return max(shared) if shared else None


def load_checkpoint(path: Path, mmap: bool = False) -> dict[str, Any]:
    """A run's checkpoint, on the CPU (an error naming the file if an older offbench wrote it);
    ``mmap``: tensors mapped from the file instead of read."""
    state = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise OffbenchError(f"{path} was written by an older offbench and cannot be used; "
                            "move it away (and its summary.json) to train this run again")
    return state


def restore_checkpoints(paths: list[Path], algo: Algorithm, rngs: list[np.random.Generator]) -> tuple[int, float]:
    """Load every seed's checkpoint at the latest step they share (:func:`shared_step`; none:
    start); return that step and the training seconds spent to reach it."""
    step = shared_step(paths)
    if step is None:
        raise ValueError(f"seeds trained together must resume from a step they share: {[str(p) for p in paths]}")
    if step == 0:
        return 0, 0.0
    states = [load_checkpoint(resume_points(p)[step]) for p in paths]  # on the CPU: load_state_dict moves them
    algo.load_seed_states([s["algo"] for s in states])
    for rng, s in zip(rngs, states):
        rng.bit_generator.state = s["numpy_rng"]
    torch.set_rng_state(states[0]["torch_rng"])
    if states[0].get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states[0]["cuda_rng"])
    return step, max(float(s.get("train_seconds", 0.0)) for s in states)
