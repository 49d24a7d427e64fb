"""Where a sweep stands, from the run records alone (so it works for any launcher and from any
machine that sees the results tree): each run is finished, running (a live process holds its
lock), failed (its last attempt failed), or waiting (dispatched or interrupted, not running)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from offbench.checkpoints import checkpoint_step
from offbench.results import RunDir, last_progress, read_json, read_metrics
from offbench.runlock import holder

STATES = ("finished", "running", "failed", "waiting")


@dataclass(frozen=True)
class RunState:
    """One run's state, step (of ``total``) and last evaluation score."""

    dataset: str
    algo: str
    config_hash: str
    seed: int
    state: str
    step: int
    total: int | None
    score: float | None
    error: str | None = None


def run_state(run: RunDir) -> RunState:
    """What the records of ``run`` say about it."""
    seed = int(run.root.name.removeprefix("seed-"))
    algo_dir = run.root.parent.parent
    config = read_json(run.config) or {}
    total = (config.get("config") or {}).get("steps")
    summary = read_json(run.summary)
    common = {"dataset": config.get("dataset", algo_dir.parent.name), "algo": algo_dir.name,
              "config_hash": run.root.parent.name,
              "seed": seed, "total": total}
    if summary is not None:
        return RunState(**common, state="finished", step=int(summary.get("steps", total or 0)),
                        score=summary.get("score_last"))
    logged, score = last_progress(read_metrics(run.metrics))
    step = max(logged, checkpoint_step(run.checkpoint))
    if holder(run.lock) is not None:
        return RunState(**common, state="running", step=step, score=score)
    failed = read_json(run.failed)
    if failed is not None:
        return RunState(**common, state="failed", step=step, score=score, error=str(failed.get("error", "")))
    return RunState(**common, state="waiting", step=step, score=score)


def sweep_status(results: Path) -> list[RunState]:
    """Every run under ``results`` (``<dataset>/<algo>/<config>/seed-<k>``), in path order."""
    return [run_state(RunDir(path)) for path in sorted(results.glob("*/*/*/seed-*")) if path.is_dir()]


def summarize(states: list[RunState]) -> list[dict[str, Any]]:
    """Per (dataset, algorithm): how many runs are in each state, and the running ones' progress
    (``seed k: step/total, last score``)."""
    groups: dict[tuple[str, str], list[RunState]] = {}
    for s in states:
        groups.setdefault((s.dataset, s.algo), []).append(s)
    rows = []
    for (dataset, algo), runs in groups.items():
        counts = {state: sum(r.state == state for r in runs) for state in STATES}
        progress = [f"seed {r.seed}: {r.step}/{r.total if r.total is not None else '?'}"
                    + (f", score {r.score:.1f}" if r.score is not None else "") for r in runs if r.state == "running"]
        rows.append({"dataset": dataset, "algo": algo, **counts, "running_now": progress,
                     "errors": sorted({r.error for r in runs if r.error})})
    return rows


def as_json(states: list[RunState]) -> dict[str, Any]:
    return {"groups": summarize(states), "runs": [asdict(s) for s in states]}
