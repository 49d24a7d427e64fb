"""Optional metric streams beside each run's ``metrics.jsonl`` (which stays the source of truth):
TensorBoard event files and Weights & Biases runs, chosen with ``offbench run --log``.

Each run gets its own stream: TensorBoard writes ``<run>/tensorboard/``; W&B logs one run per
(dataset, algorithm, config, seed) with a stable id, grouped by config, its local files under
``<run>/wandb/`` (``WANDB_MODE=offline`` works without an account or network). A resumed run
continues its stream: TensorBoard drops what the interrupted attempt logged after the checkpoint
(``purge_step``), W&B resumes the run with the same id.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from pathlib import Path
from typing import Any, Protocol

from offbench.errors import UsageError

LOGGERS = {"tensorboard": ("tensorboard", "pip install 'offbench[tensorboard]'"),
           "wandb": ("wandb", "pip install 'offbench[wandb]'")}


class MetricLogger(Protocol):
    def log(self, entry: dict[str, Any]) -> None:
        """One ``metrics.jsonl`` record (``kind`` train or eval, ``step``, values)."""
        ...

    def close(self) -> None: ...


def check_loggers(names: tuple[str, ...]) -> None:
    """A one-line usage error for an unknown logger or one whose package is missing."""
    for name in names:
        if name not in LOGGERS:
            raise UsageError(f"--log {name}: unknown logger; loggers: {', '.join(LOGGERS)}")
        module, hint = LOGGERS[name]
        try:
            __import__(module)
        except ImportError:
            raise UsageError(f"--log {name} needs the {module} package: {hint}") from None
        if name == "wandb" and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
            import wandb

            with contextlib.redirect_stderr(io.StringIO()):
                logged_in = wandb.login(prompt=False, verify=False)
            if not logged_in:
                raise UsageError("--log wandb: no W&B account on this machine; run 'wandb login', or set "
                                 "WANDB_MODE=offline to keep the runs here ('wandb sync' uploads them later)")


def scalars(entry: dict[str, Any]) -> dict[str, float]:
    """The record's finite numbers as ``kind/name`` (an evaluation's per-target list is left out)."""
    kind = entry.get("kind", "train")
    return {f"{kind}/{k}": float(v) for k, v in entry.items()
            if k not in ("kind", "step") and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v))}


class TensorBoardLogger:
    def __init__(self, root: Path, resume_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(root / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)

    def log(self, entry: dict[str, Any]) -> None:
        for name, value in scalars(entry).items():
            self.writer.add_scalar(name, value, int(entry["step"]))

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, root: Path, run_id: str, name: str, group: str, config: dict[str, Any]) -> None:
        import wandb

        quiet = not os.environ.get("OFFBENCH_VERBOSE")  # W&B's console notices only with --verbose
        self.run = wandb.init(project="offbench", id=run_id, name=name, group=group, config=config, dir=str(root),
                              resume="allow", reinit="create_new", settings=wandb.Settings(silent=quiet))

    def log(self, entry: dict[str, Any]) -> None:
        self.run.log(scalars(entry), step=int(entry["step"]))

    def close(self) -> None:
        self.run.finish()


def make_loggers(names: tuple[str, ...], root: Path, run_id: str, label: str, group: str, config: dict[str, Any],
                 resume_step: int) -> list[MetricLogger]:
    """The streams ``names`` for one run whose record is at ``root``."""
    out: list[MetricLogger] = []
    for name in names:
        if name == "tensorboard":
            out.append(TensorBoardLogger(root, resume_step))
        elif name == "wandb":
            out.append(WandbLogger(root, run_id, label, group, config))
    return out
