"""``offbench report``: run records -> tables, aggregate statistics and figures.

``build`` loads the finished runs (skipping bad records with one warning each) and prepares the
score table; ``tables`` renders it, ``stats`` estimates aggregates with bootstrap intervals,
``plots`` draws the figures, ``published`` compares with published numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from offbench.errors import OffbenchError, UsageError, unknown
from offbench.report.tables import Grid, footer, grid, score_table, select, STATS, column_labels
from offbench.results import load_runs

__all__ = ["Report", "build"]


@dataclass
class Report:
    """The runs (with their ``column`` label), their score table (long) and grid, the footer, and
    warnings about bad records."""

    results: Path
    runs: pd.DataFrame
    table: pd.DataFrame
    grid: Grid
    note: str
    warnings: list[str]
    stat: str = "last"
    labels: dict[str, str] | None = None

    def score_matrix(self, column: str, datasets: list[str]) -> np.ndarray:
        """(seeds, datasets) scores of one column, for the aggregate statistics (first ``n`` seeds of
        each dataset, ``n`` the fewest any dataset has)."""
        runs = self.runs
        per = [runs[(runs["column"] == column) & (runs["dataset"] == d)].sort_values("seed")[STATS[self.stat]].to_numpy()
               for d in datasets]
        n = min(len(p) for p in per)
        return np.stack([p[:n] for p in per], axis=1).astype(float)

    @cached_property
    def aggregate_table(self) -> pd.DataFrame:
        """:func:`aggregates` with its defaults, computed once per report."""
        return aggregates(self)

    def common_datasets(self) -> list[str]:
        """Datasets on which every column has runs (the tasks of the aggregate statistics)."""
        have = self.table.groupby("dataset")["column"].nunique()
        n_cols = self.table["column"].nunique()
        return [d for d in self.grid.rows if d in have.index and have[d] == n_cols]


def build(results: Path, stat: str = "last", ci: bool = False, algos: list[str] | None = None,
          envs: list[str] | None = None, labels: dict[str, str] | None = None) -> Report:
    """Load every finished run under ``results`` matching the ``algos``/``envs`` globs and
    tabulate ``stat`` (``last`` or ``best``); a one-line error when there is none."""
    runs, warnings = load_runs(results)
    if runs.empty:
        raise OffbenchError(f"no finished runs under {results}; start some with 'offbench run'"
                            + (f" ({len(warnings)} unfinished or unreadable)" if warnings else ""))
    chosen = select(runs, algos, envs)
    if chosen.empty:
        asked = " and ".join(f"{opt} {','.join(g)}" for opt, g in (("--algo", algos), ("--env", envs)) if g)
        raise UsageError(f"no finished run matches {asked} under {results}; it has algorithms "
                         f"{', '.join(sorted(set(runs['algo'])))} on {', '.join(sorted(set(runs['dataset'])))}")
    runs = chosen
    ids = set(runs["config_id"]) | set(runs["config_hash"])
    for prefix in labels or {}:
        if not any(i.startswith(prefix) for i in ids):
            raise UsageError(f"--label {prefix}=...: no run's config starts with '{prefix}'; configs: "
                             f"{', '.join(sorted(set(runs['config_id'])))}")
    runs = runs.assign(column=column_labels(runs, labels)).sort_values("recorded", kind="stable")
    twice = runs.duplicated(["dataset", "column", "seed"], keep="last")
    if twice.any():  # same settings and seed in two folders (a config field added or renamed since): once
        warnings.append(f"{int(twice.sum())} runs repeat the settings and seed of a later run (in another folder: "
                        "recorded before a config field was added or renamed); the later one is used")
        runs = runs[~twice]
    runs = runs.sort_index()  # back to the records' order (dataset, algorithm, config, seed), not finishing times
    table = score_table(runs, stat)
    few = table[table["seeds"] < 3]
    if len(few):
        warnings.append(f"{len(few)} of {len(table)} cells rest on fewer than 3 seeds (fewest: {few['seeds'].min()}): "
                        "their spreads and intervals are unreliable")
    return Report(results, runs, table, grid(table, ci), footer(runs, table, stat, ci), warnings, stat, labels)


def aggregates(rep: Report, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """IQM, mean, median and optimality gap across the common datasets, per column, with 95%
    stratified-bootstrap intervals."""
    from offbench.report import stats

    datasets = _common_or_fail(rep)
    rows = []
    for col in sorted(rep.table["column"].unique()):
        scores = rep.score_matrix(col, datasets)
        for name, fn in stats.AGGREGATES.items():
            value, lo, hi = stats.interval(fn, scores, reps=reps, seed=seed)
            rows.append({"algo": col, "metric": name, "value": value, "low": lo, "high": hi,
                         "tasks": len(datasets), "seeds": scores.shape[0]})
    return pd.DataFrame(rows)


def probability_of_improvement(rep: Report, a: str, b: str, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """P(a > b) over the common datasets with its 95% stratified-bootstrap interval."""
    from offbench.report import stats

    columns = set(rep.table["column"])
    for name in (a, b):
        if name not in columns:
            several = sorted(c for c in columns if c.startswith(f"{name}@"))
            if several:
                raise UsageError(f"--poi {name}: {name} ran with several configs here ({', '.join(several)}); "
                                 "name one of them (see the footer for what each changed)")
            raise unknown("algorithm in these results", name, columns)
    if a == b:
        raise UsageError("--poi needs two different algorithms")
    datasets = _common_or_fail(rep)
    return stats.poi_interval(rep.score_matrix(a, datasets), rep.score_matrix(b, datasets), reps=reps, seed=seed)


def _common_or_fail(rep: Report) -> list[str]:
    datasets = rep.common_datasets()
    if not datasets:
        raise UsageError("no dataset has runs of every algorithm shown; choose some with --algo and --env")
    return datasets
