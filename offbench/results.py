"""Run records: the directory layout of one run, and loading all finished runs as a DataFrame.

``<results>/<dataset>/<algo>/<config-hash>/seed-<k>/`` holds
- ``config.json``   the resolved configuration (the single source of truth for the run);
- ``metrics.jsonl`` append-only log: ``{"kind": "train"|"eval", "step": ..., ...}`` per line;
- ``checkpoint.pt`` the latest checkpoint (written atomically), for resuming;
- ``summary.json``  written last, atomically: its presence means the run is finished;
- ``failed.json``   why the last attempt failed, if it did (removed when the run starts again);
- ``.lock``         present while a process trains the run (:mod:`offbench.runlock`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from offbench.data.spec import file_name


def config_hash(algo: str, dataset: str, config: dict[str, Any]) -> str:
    """A short, stable digest of everything that determines a run except its seed."""
    blob = json.dumps({"algo": algo, "dataset": dataset, "config": config}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class RunDir:
    """Paths of one run's record."""

    root: Path

    @classmethod
    def of(cls, results: Path, dataset: str, algo: str, chash: str, seed: int) -> RunDir:
        return cls(results / file_name(dataset) / algo / chash / f"seed-{seed}")

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def lock(self) -> Path:
        """Present while a process trains the run (:mod:`offbench.runlock`)."""
        return self.root / ".lock"

    @property
    def failed(self) -> Path:
        """Why the run's last attempt failed (written by the launcher; removed when it runs again)."""
        return self.root / "failed.json"

    @property
    def sweep(self) -> Path:
        """Return-conditioning sweep: achieved returns at a grid of targets (``offbench evaluate --sweep``)."""
        return self.root / "sweep.jsonl"

    def finished(self) -> bool:
        return read_json(self.summary) is not None


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing or not a complete JSON object."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def read_metrics(path: Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Every complete JSON line of a metrics log; a torn or malformed line is skipped (and named
    in ``warnings`` when given)."""
    records = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for i, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if isinstance(rec, dict):
            records.append(rec)
        elif warnings is not None and line.strip():
            warnings.append(f"skipping line {i} of {path}: not a complete JSON record")
    return records


def last_progress(records: list[dict[str, Any]]) -> tuple[int, float | None]:
    """The last step a run's metrics log reached, and its last evaluation score (None before the
    first evaluation)."""
    step = max((int(r.get("step", 0)) for r in records), default=0)
    scores = [r["score"] for r in records if r.get("kind") == "eval" and "score" in r]
    return step, scores[-1] if scores else None


SUMMARY_COLUMNS = ["dataset", "algo", "config_hash", "seed", "steps", "score_last", "score_best",
                   "return_last", "return_best", "eval_episodes", "score_name"]


def load_runs(results: Path) -> tuple[pd.DataFrame, list[str]]:
    """All finished runs under ``results`` (one row per seed) and one warning per bad record."""
    rows, warnings = [], []
    normalizers: dict[str, Any] = {}
    for run_dir in sorted(results.glob("*/*/*/seed-*")):
        summary_path = run_dir / "summary.json"
        if not summary_path.exists():
            warnings.append(f"skipping {run_dir}: unfinished (no summary.json); 'offbench run' resumes it")
            continue
        summary = read_json(summary_path)
        if summary is None or not set(SUMMARY_COLUMNS) <= summary.keys():
            warnings.append(f"skipping {summary_path}: not a complete run summary")
            continue
        config = read_json(run_dir / "config.json")
        cfg = config.get("config") if config else None
        if isinstance(cfg, dict):
            cfg = current_names(summary["algo"], cfg)
        recipe = cfg.get("recipe") if isinstance(cfg, dict) else None
        defaults = recipe_defaults(summary["algo"], summary["dataset"], recipe) if isinstance(cfg, dict) else None
        changes = config_changes(cfg, defaults) if defaults is not None else None
        if changes is not None:  # one id for one command's runs on every dataset
            config_id = _digest({"recipe": recipe, "changes": changes})
        else:
            config_id = _digest(cfg) if cfg is not None else summary["config_hash"]
        row = {**{k: summary[k] for k in SUMMARY_COLUMNS}, "config_id": config_id, "recipe": recipe,
               "changes": changes, "default_steps": defaults.get("steps") if defaults else None,
               "recorded": summary_path.stat().st_mtime}
        rows.append(normalized(row, normalizers))
    renormalized = {d for d, n in normalizers.items() if n is not None and n.changed}
    warnings += [f"scores on {d} are normalized with its current reference returns, not those recorded with "
                 f"{normalizers[d].changed} of its runs" for d in sorted(renormalized)]
    columns = [*SUMMARY_COLUMNS, "config_id", "recipe", "changes", "default_steps", "recorded"]
    return pd.DataFrame(rows, columns=columns), warnings


def current_names(algo: str, config: dict[str, Any]) -> dict[str, Any]:
    """A recorded config with its fields under today's names (see ``AlgoConfig.RENAMED``); as
    recorded where the algorithm is no longer registered."""
    from offbench.algos import get_algorithm

    try:
        cls = get_algorithm(algo)
    except Exception:  # noqa: BLE001  (a record from elsewhere still loads)
        return config
    return cls.Config.upgrade(config)


class _Normalizer:
    """A dataset's current reference returns, counting the runs recorded with other ones."""

    def __init__(self, spec: Any) -> None:
        self.spec, self.changed = spec, 0

    def score(self, episode_return: float, recorded: float) -> float:
        score = float(self.spec.normalize(episode_return))
        self.changed += not math.isclose(score, recorded, rel_tol=1e-9, abs_tol=1e-9)
        return score


def normalized(row: dict[str, Any], normalizers: dict[str, Any]) -> dict[str, Any]:
    """The run's scores computed from its raw returns with the dataset's reference returns as
    they are now (records keep raw returns; new references re-normalize old runs); the recorded
    scores where the references are unknown (a dataset no longer registered or not cached)."""
    from offbench.data import cache

    dataset = row["dataset"]
    if dataset not in normalizers:
        try:
            spec = cache.run_spec(dataset)
            # scored by success rate (OGBench): not a function of the return; the recorded scores stand
            normalizers[dataset] = None if spec.params.get("score_by") == "success" else _Normalizer(spec)
        except Exception:  # noqa: BLE001  (unknown references: the recorded scores stand)
            normalizers[dataset] = None
    norm = normalizers[dataset]
    if norm is None:
        return row
    return {**row, "score_last": norm.score(row["return_last"], row["score_last"]),
            "score_best": norm.score(row["return_best"], row["score_best"])}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def recipe_defaults(algo: str, dataset: str, recipe: str | None) -> dict[str, Any] | None:
    """An algorithm's default config on a dataset under ``recipe``, as ``config.json`` holds it;
    None when unknown (an algorithm or dataset no longer registered)."""
    from offbench.algos import get_algorithm
    from offbench.data.spec import get_spec

    try:
        defaults = get_algorithm(algo).Config.for_dataset(get_spec(dataset), recipe).to_dict()
    except Exception:  # noqa: BLE001  (a record from elsewhere still loads; it is only not compared)
        return None
    return json.loads(json.dumps(defaults))  # tuples become lists, as in config.json


def config_changes(config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The settings of a run's config that differ from ``defaults`` (what its command changed)."""
    return {k: v for k, v in config.items() if k not in defaults or defaults[k] != v}


def load_curves(runs: pd.DataFrame, results: Path, warnings: list[str]) -> pd.DataFrame:
    """Every evaluation of the given runs: (dataset, algo, config_hash, seed, step, score)."""
    rows = []
    for r in runs.itertuples():
        path = RunDir.of(results, r.dataset, r.algo, r.config_hash, r.seed).metrics
        for rec in read_metrics(path, warnings):
            if rec.get("kind") == "eval" and "score" in rec:
                rows.append({"dataset": r.dataset, "algo": r.algo, "config_hash": r.config_hash, "seed": r.seed,
                             "step": rec["step"], "score": rec["score"]})
    return pd.DataFrame(rows, columns=["dataset", "algo", "config_hash", "seed", "step", "score"])


def load_sweeps(runs: pd.DataFrame, results: Path, warnings: list[str]) -> pd.DataFrame:
    """Return-conditioning sweeps of the given runs: (dataset, algo, seed, target_return, return_mean,
    and the best episode return in the dataset, recorded by the sweep)."""
    rows = []
    for r in runs.itertuples():
        path = RunDir.of(results, r.dataset, r.algo, r.config_hash, r.seed).sweep
        for rec in read_metrics(path, warnings):
            if "target_return" in rec and "return_mean" in rec:
                rows.append({"dataset": r.dataset, "algo": r.algo, "config_hash": r.config_hash, "seed": r.seed,
                             "target_return": rec["target_return"], "return_mean": rec["return_mean"],
                             "episodes": rec.get("episodes"), "dataset_best_return": rec.get("dataset_best_return")})
    return pd.DataFrame(rows, columns=["dataset", "algo", "config_hash", "seed", "target_return", "return_mean",
                                       "episodes", "dataset_best_return"])
