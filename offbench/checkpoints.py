"""Checkpoints: one file per seed with everything needed to resume it exactly (the algorithm's
state, the random number generators, the step and the training time so far), written atomically."""

from __future__ import annotations

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
        with atomic_path(path) as tmp:
            torch.save(ckpt, tmp)


def checkpoint_step(path: Path) -> int:
    """The step the checkpoint at ``path`` was taken at (0 without one)."""
    if not path.is_file():
        return 0
    return int(load_checkpoint(path, mmap=True)["step"])  # mapped: the weights are not read


def load_checkpoint(path: Path, mmap: bool = False) -> dict[str, Any]:
    """A run's checkpoint, on the CPU (an error naming the file if an older offbench wrote it);
    ``mmap``: tensors mapped from the file instead of read."""
    state = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise OffbenchError(f"{path} was written by an older offbench and cannot be used; "
                            "move it away (and its summary.json) to train this run again")
    return state


def restore_checkpoints(paths: list[Path], algo: Algorithm, rngs: list[np.random.Generator]) -> tuple[int, float]:
    """Load every seed's checkpoint (all at the same step, or none); return that step and the
    training seconds spent to reach it."""
    if not any(p.is_file() for p in paths):
        return 0, 0.0
    states = [load_checkpoint(p) for p in paths]  # on the CPU: load_state_dict moves them
    steps = {int(s["step"]) for s in states}
    if len(steps) != 1:
        raise ValueError(f"seeds trained together must resume from the same step, got {sorted(steps)}")
    algo.load_seed_states([s["algo"] for s in states])
    for rng, s in zip(rngs, states):
        rng.bit_generator.state = s["numpy_rng"]
    torch.set_rng_state(states[0]["torch_rng"])
    if states[0].get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states[0]["cuda_rng"])
    return steps.pop(), max(float(s.get("train_seconds", 0.0)) for s in states)
