"""A report and its extra sections (aggregates, probability of improvement, published numbers) as
one document in a machine format: Markdown, LaTeX, CSV or JSON. Standard output then holds that
format only; what CSV cannot hold goes to standard error."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from offbench.report import Report
from offbench.report.tables import latex_escape, to_csv, to_latex, to_markdown

FORMATS = ("md", "latex", "csv", "json")


@dataclass
class Poi:
    """P(a > b) over ``datasets`` datasets, with its 95% bootstrap interval."""

    a: str
    b: str
    p: float
    low: float
    high: float
    datasets: int

    def sentence(self) -> str:
        return (f"P({self.a} > {self.b}) = {self.p:.2f} [95% CI {self.low:.2f}, {self.high:.2f}] "
                f"over {self.datasets} datasets")


@dataclass
class Extras:
    """The sections asked for besides the table (None: not asked)."""

    aggregates: pd.DataFrame | None = None
    poi: Poi | None = None
    comparison: pd.DataFrame | None = None


def aggregate_rows(agg: pd.DataFrame) -> pd.DataFrame:
    """algo, metric, value, 95% CI as text."""
    return pd.DataFrame({"algo": agg["algo"], "metric": agg["metric"], "value": agg["value"].map(lambda v: f"{v:.1f}"),
                         "95% CI": [f"[{lo:.1f}, {hi:.1f}]" for lo, hi in zip(agg["low"], agg["high"])]})


def aggregate_title(agg: pd.DataFrame) -> str:
    return (f"Aggregates over {agg['tasks'].iloc[0]} datasets, {agg['seeds'].iloc[0]} seeds "
            "(95% stratified bootstrap CIs)")


def comparison_rows(cmp: pd.DataFrame) -> pd.DataFrame:
    """dataset, algo, measured, published, difference, within spread, budget, source as text."""
    def published(r: Any) -> str:
        return f"{r.published:.1f}" + ("" if pd.isna(r.published_spread) else f" ± {r.published_spread:.1f}")

    return pd.DataFrame({
        "dataset": cmp["dataset"], "algo": cmp["algo"],
        "measured": [f"{m:.1f} ± {s:.1f}" for m, s in zip(cmp["measured"], cmp["measured_std"])],
        "published": [published(r) for r in cmp.itertuples()],
        "difference": cmp["difference"].map(lambda d: f"{d:+.1f}"),
        "within published spread": cmp["within_published_spread"], "budget": cmp["budget"], "source": cmp["source"]})


COMPARISON_TITLE = "Measured vs published (mean; published spread where given)"


def frame_markdown(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def frame_latex(df: pd.DataFrame, caption: str) -> str:
    def cell(v: Any) -> str:
        return latex_escape(str(v)).replace("±", r"$\pm$")

    out = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{" + "l" * len(df.columns) + "}", r"\toprule",
           " & ".join(cell(c) for c in df.columns) + r" \\", r"\midrule"]
    out += [" & ".join(cell(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    out += [r"\bottomrule", r"\end{tabular}", r"\caption{" + cell(caption) + "}", r"\end{table}"]
    return "\n".join(out) + "\n"


def render(rep: Report, extras: Extras, fmt: str) -> tuple[str, str]:
    """(standard output, standard error) for ``fmt``, one of :data:`FORMATS`."""
    if fmt == "json":
        return json.dumps(as_json(rep, extras), indent=1, default=_plain) + "\n", ""
    sections: list[tuple[str, pd.DataFrame | str]] = []
    if extras.aggregates is not None:
        sections.append((aggregate_title(extras.aggregates), aggregate_rows(extras.aggregates)))
    if extras.poi is not None:
        sections.append(("Probability of improvement", extras.poi.sentence()))
    if extras.comparison is not None:
        sections.append((COMPARISON_TITLE, comparison_rows(extras.comparison) if len(extras.comparison)
                         else "no measured (dataset, algorithm) pair has a published number"))
    if fmt == "md":
        body = [to_markdown(rep.grid, rep.note)]
        body += [f"\n## {title}\n\n" + (frame_markdown(s) if isinstance(s, pd.DataFrame) else s + "\n")
                 for title, s in sections]
        return "".join(body), ""
    if fmt == "latex":
        body = [to_latex(rep.grid, rep.note)]
        body += ["\n" + (frame_latex(s, title) if isinstance(s, pd.DataFrame) else f"% {title}: {s}\n")
                 for title, s in sections]
        return "".join(body), ""
    # CSV holds one table: the others go to standard error, readable (and to --out as files)
    err = "".join(f"{title}:\n" + (s.to_string(index=False) if isinstance(s, pd.DataFrame) else s) + "\n"
                  for title, s in sections)
    return to_csv(rep.table), err


def as_json(rep: Report, extras: Extras) -> dict[str, Any]:
    """Everything the report shows, as JSON-ready values (NaN as null)."""
    cols = ["dataset", "column", "mean", "std", "ci95", "seeds", "steps", "domain"]
    rows = rep.table[cols].rename(columns={"column": "algo"}).to_dict("records")
    folders = rep.runs.groupby(["dataset", "column"])["config_hash"].first()
    for row in rows:
        row["config_folder"] = folders[(row["dataset"], row["algo"])]
    out: dict[str, Any] = {"rows": rows, "footer": rep.note, "warnings": rep.warnings}
    if extras.aggregates is not None:
        out["aggregates"] = extras.aggregates.to_dict("records")
    if extras.poi is not None:
        out["probability_of_improvement"] = vars(extras.poi)
    if extras.comparison is not None:
        out["comparison"] = extras.comparison.to_dict("records")
    return _nan_to_none(out)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers for ``json.dumps``."""
    return value.item() if hasattr(value, "item") else str(value)
