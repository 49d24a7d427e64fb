"""Published numbers next to measured ones (``offbench report --compare published``).

``results/published/*.csv`` (shipped in ``offbench/published/``) hold published tables with their
source: one line per (dataset, algorithm) with the published mean and, where given, its spread.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from offbench.errors import UsageError

COLUMNS = ["source", "table", "dataset", "algo", "mean", "spread", "spread_kind", "seeds", "stat", "score"]


def published_dir() -> Path:
    return Path(str(resources.files("offbench") / "published"))


def load_published(where: str) -> pd.DataFrame:
    """Every CSV under ``where`` (a directory or file; ``published``: the shipped tables)."""
    path = published_dir() if where == "published" else Path(where)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise UsageError(f"--compare {where}: no published CSV files found at {path}")
    frames = []
    for f in files:
        df = pd.read_csv(f)
        missing = {"source", "dataset", "algo", "mean"} - set(df.columns)
        if missing:
            raise UsageError(f"{f}: not a published-results CSV (missing {', '.join(sorted(missing))})")
        frames.append(df.reindex(columns=COLUMNS))
    return pd.concat(frames, ignore_index=True)


def compare(measured: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Join measured (dataset, column) means with published ones: difference, whether the
    measured mean lies within the published mean ± spread (unknown where no spread is published),
    and the training budget when it is not the recipe's (published numbers use the recipe's)."""
    m = measured.rename(columns={"column": "algo", "mean": "measured", "std": "measured_std"})
    joined = m.merge(published.rename(columns={"mean": "published", "spread": "published_spread"}),
                     on=["dataset", "algo"], how="inner")
    joined["difference"] = joined["measured"] - joined["published"]

    def within(row: pd.Series) -> str:
        if pd.isna(row["published_spread"]):
            return "no spread published"
        return "yes" if abs(row["difference"]) <= row["published_spread"] else "no"

    def budget(row: pd.Series) -> str:
        default = row.get("default_steps")
        if default is None or pd.isna(default):
            return "unknown"
        if int(row["steps"]) == int(default):
            return "the recipe's"
        return f"{int(row['steps']):,} of the recipe's {int(default):,} steps"

    joined["within_published_spread"] = joined.apply(within, axis=1) if len(joined) else []
    joined["budget"] = joined.apply(budget, axis=1) if len(joined) else []
    cols = ["dataset", "algo", "measured", "measured_std", "seeds_x", "published", "published_spread",
            "difference", "within_published_spread", "budget", "source"]
    return joined.rename(columns={"seeds_x": "seeds"})[[c if c != "seeds_x" else "seeds" for c in cols]]
