"""Report v1: run records -> a table of mean +- std over seeds, rows datasets, columns algorithms."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from offbench.data.spec import all_specs
from offbench.results import load_runs

STATS = {"last": "score_last", "best": "score_best"}


def column_labels(runs: pd.DataFrame) -> pd.Series:
    """Algorithm names, with the config hash appended where one algorithm ran with several configs
    on the same dataset (different configs are never averaged together)."""
    n_configs = runs.groupby(["dataset", "algo"])["config_hash"].transform("nunique")
    return runs["algo"].where(n_configs == 1, runs["algo"] + "@" + runs["config_hash"].str[:6])


def score_table(runs: pd.DataFrame, stat: str = "last") -> pd.DataFrame:
    """One row per (dataset, column): mean, sample std and count of the chosen statistic over seeds."""
    col = STATS[stat]
    runs = runs.assign(column=column_labels(runs))
    g = runs.groupby(["dataset", "column"])[col]
    table = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "seeds": g.count()})
    return table.reset_index()


def _cell(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.1f} ± {std:.1f} ({seeds})"


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """Rows datasets (registry order), columns algorithms, cells "mean ± std (seeds)"."""
    cells = table.assign(cell=[_cell(m, s, n) for m, s, n in zip(table["mean"], table["std"], table["seeds"])])
    out = cells.pivot(index="dataset", columns="column", values="cell").fillna("—")
    order = [d for d in all_specs() if d in out.index] + [d for d in out.index if d not in all_specs()]
    return out.loc[order]


def footer(runs: pd.DataFrame, stat: str) -> str:
    what = "final evaluation (last)" if stat == "last" else "best evaluation over training (best)"
    scores = sorted(set(runs["score_name"]))
    return (f"Cells: mean ± sample std over seeds (number of seeds) of the {what}; "
            f"score: {', '.join(scores)}; evaluation episodes: {', '.join(map(str, sorted(set(runs['eval_episodes']))))}.")


@dataclass
class Report:
    """The long table (one row per dataset and column), the wide table, its footer, and warnings."""

    long: pd.DataFrame
    wide: pd.DataFrame
    note: str
    warnings: list[str]

    @property
    def empty(self) -> bool:
        return self.long.empty


def build(results: Path, stat: str = "last") -> Report:
    """Load every finished run under ``results`` and tabulate ``stat`` (``last`` or ``best``)."""
    runs, warnings = load_runs(results)
    if runs.empty:
        return Report(pd.DataFrame(), pd.DataFrame(), "", warnings)
    long = score_table(runs, stat)
    return Report(long, wide(long), footer(runs, stat), warnings)


def to_markdown(w: pd.DataFrame, note: str) -> str:
    header = "| dataset | " + " | ".join(w.columns) + " |"
    rule = "|---|" + "---|" * len(w.columns)
    rows = [f"| {d} | " + " | ".join(w.loc[d]) + " |" for d in w.index]
    return "\n".join([header, rule, *rows, "", note]) + "\n"


def to_csv(long: pd.DataFrame) -> str:
    buf = io.StringIO()
    long.rename(columns={"column": "algo"}).round({"mean": 4, "std": 4}).to_csv(buf, index=False)
    return buf.getvalue()
