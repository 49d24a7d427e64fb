"""Run records -> score tables: rows datasets grouped by domain, columns algorithms, formats.

Cells are mean ± sample std over seeds (or ± the half-width of a Student-t 95% interval of the
mean with ``ci``), the best mean per row in bold, and one average row per domain. The footer says
which statistic is shown (final "last" or "best" evaluation), over how many seeds, after how many
gradient steps, and how scores are normalized.
"""

from __future__ import annotations

import fnmatch
import io
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from offbench.data.spec import all_specs, get_spec
from offbench.errors import OffbenchError
from offbench.report.stats import t_halfwidth

STATS = {"last": "score_last", "best": "score_best"}
DOMAIN_ORDER = ["mujoco", "atari", "keytodoor"]


def column_labels(runs: pd.DataFrame, labels: dict[str, str] | None = None) -> pd.Series:
    """Algorithm names, with the config's id appended (or a ``labels[prefix]`` name) where one
    algorithm ran with several configs: different configs are never averaged. The id is a digest
    of the resolved config alone (the run's config hash also covers the dataset), counted over
    the whole selection, so one config has one column name on every dataset."""
    labels = labels or {}
    ids = runs["config_id"] if "config_id" in runs else runs["config_hash"]
    n_configs = ids.groupby(runs["algo"]).transform("nunique")

    def label(algo: str, cid: str, chash: str, many: bool) -> str:
        for prefix, name in labels.items():
            if cid.startswith(prefix) or chash.startswith(prefix):
                return name
        return f"{algo}@{cid[:6]}" if many else algo

    return pd.Series([label(a, i, h, n > 1) for a, i, h, n in zip(runs["algo"], ids, runs["config_hash"], n_configs)],
                     index=runs.index)


def select(runs: pd.DataFrame, algos: list[str] | None, envs: list[str] | None) -> pd.DataFrame:
    """Runs whose algorithm and dataset match any of the globs (all when None)."""
    def match(values: pd.Series, globs: list[str] | None) -> pd.Series:
        if not globs:
            return pd.Series(True, index=values.index)
        return values.map(lambda v: any(fnmatch.fnmatch(v, g) for g in globs))
    return runs[match(runs["algo"], algos) & match(runs["dataset"], envs)]


def score_table(runs: pd.DataFrame, stat: str = "last") -> pd.DataFrame:
    """One row per (dataset, column): mean, sample std, t-interval half-width and seed count
    (``runs`` carry their ``column`` label: :func:`column_labels`)."""
    col = STATS[stat]
    rows = []
    for (dataset, column), g in runs.groupby(["dataset", "column"], sort=False):
        v = g[col].to_numpy(dtype=float)
        rows.append({"dataset": dataset, "column": column, "mean": v.mean(),
                     "std": float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"), "ci95": t_halfwidth(v),
                     "seeds": len(v), "steps": int(g["steps"].max()), "domain": domain_of(dataset),
                     "default_steps": g["default_steps"].iloc[0] if "default_steps" in g else None})
    return pd.DataFrame(rows)


def domain_of(dataset: str) -> str:
    """The dataset's domain (a catalogue id's from its metadata); "other" where it is unknown now."""
    try:
        return get_spec(dataset).domain
    except OffbenchError:
        return "other"


def dataset_order(datasets: list[str]) -> list[str]:
    """Grouped by domain (MuJoCo, Atari, Key-to-Door, others), registry order within a domain."""
    registry = list(all_specs())
    rank = {d: i for i, d in enumerate(registry)}
    dom = {d: domain_of(d) for d in datasets}
    key = {d: (DOMAIN_ORDER.index(dom[d]) if dom[d] in DOMAIN_ORDER else len(DOMAIN_ORDER), rank.get(d, len(rank)), d)
           for d in datasets}
    return sorted(datasets, key=key.__getitem__)


@dataclass
class Grid:
    """The table as numbers: rows (datasets and domain averages) x columns, means and spreads."""

    rows: list[str]
    columns: list[str]
    mean: pd.DataFrame
    spread: pd.DataFrame
    seeds: pd.DataFrame
    average_rows: list[str] = field(default_factory=list)

    def best(self, row: str) -> set[str]:
        """Columns holding the row's best mean (ties all bold)."""
        m = self.mean.loc[row].dropna()
        return set(m.index[np.isclose(m, m.max())]) if len(m) else set()

    def text(self, row: str, column: str) -> str:
        m = self.mean.loc[row, column]
        if pd.isna(m):
            return "—"
        if row in self.average_rows:
            return f"{m:.1f}"
        spread = self.spread.loc[row, column]
        return f"{m:.1f} (1 seed)" if pd.isna(spread) else f"{m:.1f} ± {spread:.1f}"


def grid(table: pd.DataFrame, ci: bool = False) -> Grid:
    """Arrange a score table: datasets grouped by domain, then one average row per domain (over the
    datasets where every column has a value)."""
    columns = sorted(table["column"].unique(), key=lambda c: (c == "random", c))
    datasets = dataset_order(list(table["dataset"].unique()))
    piv = {k: table.pivot(index="dataset", columns="column", values=k).reindex(index=datasets, columns=columns)
           for k in ("mean", "ci95" if ci else "std", "seeds")}
    mean, spread, seeds = piv["mean"], piv["ci95" if ci else "std"], piv["seeds"]
    rows, avg_rows = [], []
    for domain in dict.fromkeys(domain_of(d) for d in datasets):
        in_domain = [d for d in datasets if domain_of(d) == domain]
        rows += in_domain
        complete = mean.loc[in_domain].dropna(axis=1, how="all").dropna()  # columns run in this domain
        if len(in_domain) > 1 and len(complete):
            name = f"{domain} average ({len(complete)})"
            mean.loc[name] = complete.mean().reindex(columns)
            spread.loc[name] = np.nan
            seeds.loc[name] = np.nan
            rows.append(name)
            avg_rows.append(name)
    return Grid(rows, columns, mean, spread, seeds, avg_rows)


def footer(runs: pd.DataFrame, table: pd.DataFrame, stat: str, ci: bool) -> str:
    what = "final evaluation (last)" if stat == "last" else "best evaluation during training (best), per seed"
    spread = "± half-width of the 95% Student-t interval of the mean" if ci else "± sample standard deviation"
    seeds = sorted(set(table["seeds"]))
    steps = sorted(set(table["steps"]))
    scores = sorted(set(runs["score_name"]))
    return (f"Mean over seeds {spread} of the {what}; seeds: {', '.join(map(str, seeds))}; "
            f"gradient steps: {', '.join(f'{s:,}' for s in steps)}; score: {'; '.join(scores)}; "
            f"evaluation episodes: {', '.join(map(str, sorted(set(runs['eval_episodes']))))}{recipes(runs)}. "
            f"{config_differences(runs)}Bold: best mean in its row.")


def config_differences(runs: pd.DataFrame) -> str:
    """``Configs: dt@1a2b3c lr=0.001; dt@4d5e6f defaults. `` for algorithms shown with several
    configs: what each changed from the algorithm's defaults (under its recipe)."""
    if "column" not in runs or "changes" not in runs:
        return ""
    many = runs.groupby("algo")["column"].nunique()
    parts = []
    for column, g in runs[runs["algo"].isin(many[many > 1].index)].groupby("column", sort=True):
        changes = g["changes"].iloc[0]
        if not isinstance(changes, dict):
            parts.append(f"{column} config {g['config_id'].iloc[0]} (defaults unknown)")
            continue
        shown = ", ".join(f"{k}={_plain(v)}" for k, v in sorted(changes.items())) or "defaults"
        recipe = g["recipe"].iloc[0]
        parts.append(f"{column} {shown}" + (f" (recipe {recipe})" if isinstance(recipe, str) else ""))
    return f"Configs: {'; '.join(parts)}. " if parts else ""


def _plain(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def recipes(runs: pd.DataFrame) -> str:
    """``; recipes: dt corl, pbc paper`` for the columns whose algorithm has named recipes."""
    if "recipe" not in runs or "column" not in runs:
        return ""
    named = runs.dropna(subset=["recipe"]).groupby("column", sort=True)["recipe"].first()
    if not len(named):
        return ""
    own = " (offbench: offbench's own settings, where no publication gives a recipe)" if "offbench" in set(named) else ""
    return f"; recipes: {', '.join(f'{c} {r}' for c, r in named.items())}{own}"


def to_markdown(g: Grid, note: str) -> str:
    lines = ["| dataset | " + " | ".join(g.columns) + " |", "|---|" + "---:|" * len(g.columns)]
    for r in g.rows:
        best = g.best(r)
        cells = [f"**{g.text(r, c)}**" if c in best else g.text(r, c) for c in g.columns]
        name = f"*{r}*" if r in g.average_rows else r
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", note]) + "\n"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (one pass, so replacements are not escaped again)."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: LATEX_SPECIAL[m.group()], text)


def to_latex(g: Grid, note: str) -> str:
    """A booktabs table (needs ``\\usepackage{booktabs}``), domain averages after a rule."""
    def cell(r: str, c: str) -> str:
        t = g.text(r, c).replace("±", r"$\pm$").replace("—", "--")
        return rf"\textbf{{{t}}}" if c in g.best(r) else t

    out = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * len(g.columns) + "}", r"\toprule",
           "Dataset & " + " & ".join(latex_escape(c) for c in g.columns) + r" \\", r"\midrule"]
    for r in g.rows:
        if r in g.average_rows:
            out.append(r"\midrule")
        out.append(latex_escape(r) + " & " + " & ".join(cell(r, c) for c in g.columns) + r" \\")
        if r in g.average_rows and r != g.rows[-1]:
            out.append(r"\midrule")
    out += [r"\bottomrule", r"\end{tabular}", r"\caption{" + latex_escape(note).replace("±", r"$\pm$") + "}",
            r"\end{table}"]
    return "\n".join(out) + "\n"


def to_csv(table: pd.DataFrame) -> str:
    """The long table: one line per (dataset, algorithm) with mean, std, CI half-width, seeds."""
    buf = io.StringIO()
    cols = ["dataset", "column", "mean", "std", "ci95", "seeds", "steps", "domain"]
    table[cols].rename(columns={"column": "algo"}).round({"mean": 4, "std": 4, "ci95": 4}).to_csv(buf, index=False)
    return buf.getvalue()
