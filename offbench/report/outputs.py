"""Write a report to a directory: every table format, aggregate statistics and the figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from offbench.report import Report
from offbench.report.tables import to_csv, to_latex, to_markdown
from offbench.results import load_curves, load_sweeps


def write_tables(rep: Report, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"table.md": to_markdown(rep.grid, rep.note), "table.tex": to_latex(rep.grid, rep.note),
             "table.csv": to_csv(rep.table)}
    if rep.common_datasets():
        files["aggregates.csv"] = rep.aggregate_table.round(4).to_csv(index=False)
    paths = []
    for name, text in files.items():
        (out / name).write_text(text)
        paths.append(out / name)
    return paths


def write_plots(rep: Report, out: Path) -> tuple[list[Path], list[str]]:
    """Every figure the records allow; returns the files and notes on figures that were skipped."""
    from offbench.report import plots, stats

    score_name = "; ".join(sorted(set(rep.runs["score_name"])))
    keys = rep.runs[["dataset", "algo", "config_hash", "seed", "column"]]
    paths: list[Path] = []
    skipped: list[str] = []
    curves = load_curves(rep.runs, rep.results, rep.warnings)
    curves = curves.merge(keys, on=["dataset", "algo", "config_hash", "seed"])
    episodes = sorted(set(int(e) for e in rep.runs["eval_episodes"]))
    paths += plots.learning_curves(curves, score_name, out,
                                   f", {'/'.join(map(str, episodes))} evaluation episodes per point and seed")
    sweeps = load_sweeps(rep.runs, rep.results, rep.warnings)
    if len(sweeps):
        sweeps = sweeps.merge(keys, on=["dataset", "algo", "config_hash", "seed"])
        best = sweeps.dropna(subset=["dataset_best_return"]).groupby("dataset")["dataset_best_return"].max()
        paths += plots.return_conditioning(sweeps, best.to_dict(), out)
    else:
        skipped.append("return conditioning: no sweeps yet (run 'offbench evaluate --sweep' on DT runs)")
    datasets = rep.common_datasets()
    if not datasets:
        skipped.append("aggregate intervals and performance profiles: no dataset has runs of every algorithm")
        return paths, skipped
    paths += plots.aggregate_intervals(rep.aggregate_table, score_name, out)
    all_scores = np.concatenate([rep.score_matrix(c, datasets).ravel() for c in sorted(rep.table["column"].unique())])
    taus = np.linspace(min(0.0, all_scores.min()), max(100.0, all_scores.max()), 101)
    profiles = {c: stats.profile_band(rep.score_matrix(c, datasets), taus) for c in sorted(rep.table["column"].unique())}
    shape = rep.score_matrix(sorted(rep.table["column"].unique())[0], datasets).shape
    paths += plots.performance_profiles(profiles, taus, score_name, out, f"{shape[1]} datasets x {shape[0]} seeds")
    return paths, skipped
