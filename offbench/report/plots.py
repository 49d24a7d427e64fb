"""Figures from run records (matplotlib, PNG and PDF): learning curves, return conditioning,
aggregate intervals and performance profiles. Colour-blind-safe palette (Okabe-Ito), labelled
axes with units, legends outside the data, layouts that do not overlap."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from offbench.report import stats  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]  # a shape per series: lines hidden under others stay visible
BAND = "band: 95% Student-t interval of the mean over seeds"


def colors(names: list[str]) -> dict[str, str]:
    return {n: OKABE_ITO[i % len(OKABE_ITO)] for i, n in enumerate(names)}


def markers(names: list[str]) -> dict[str, str]:
    return {n: MARKERS[i % len(MARKERS)] for i, n in enumerate(names)}


def score_bounds(score_name: str) -> tuple[float, float] | None:
    """The range a score can take (success rates: 0-100%), or None when unbounded."""
    return (0.0, 100.0) if "success rate" in score_name else None


def seeds_text(counts: pd.Series) -> str:
    """``3 seeds`` or ``2-5 seeds`` from per-series seed counts."""
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo} seed{'s' * (hi != 1)}" if lo == hi else f"{lo}-{hi} seeds"


def caption(fig: plt.Figure, text: str) -> None:
    fig.text(0.5, -0.02, text, ha="center", va="top", fontsize=8, wrap=True)


def save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def _grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def learning_curves(curves: pd.DataFrame, score_name: str, out: Path, episodes: str = "") -> list[Path]:
    """Per dataset: normalized score against gradient steps, mean over seeds with a 95% t-band
    (clipped to the score's range), the seeds and evaluation episodes in the caption."""
    datasets = list(dict.fromkeys(curves["dataset"]))
    algos = sorted(curves["column"].unique())
    col, mark, bounds = colors(algos), markers(algos), score_bounds(score_name)
    fig, axes = _grid(len(datasets))
    for ax, d in zip(axes.flat, datasets):
        for a in algos:
            g = curves[(curves["dataset"] == d) & (curves["column"] == a)]
            if g.empty:
                continue
            by_step = g.groupby("step")["score"]
            steps = np.array(sorted(by_step.groups))
            m = by_step.mean().loc[steps].to_numpy()
            h = np.array([stats.t_halfwidth(by_step.get_group(s).to_numpy()) for s in steps])
            low, high = m - h, m + h
            if bounds:
                low, high = np.clip(low, *bounds), np.clip(high, *bounds)
            ax.plot(steps, m, color=col[a], label=a, marker=mark[a], ms=4, markevery=max(1, len(steps) // 10))
            ax.fill_between(steps, low, high, color=col[a], alpha=0.2, lw=0)
        if bounds:
            ax.set_ylim(bounds[0] - 3, bounds[1] + 3)
        ax.set_title(d, fontsize=10)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel(score_name)
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(algos), 6), bbox_to_anchor=(0.5, 1.09), frameon=False)
    fig.tight_layout()
    n = curves.groupby(["dataset", "column"])["seed"].nunique()
    caption(fig, f"Mean over {seeds_text(n)}{episodes}; {BAND}" + (", clipped to the score's range" if bounds else ""))
    return save(fig, out, "learning_curves")


def return_conditioning(sweeps: pd.DataFrame, best_returns: dict[str, float], out: Path) -> list[Path]:
    """DT paper Figure 4: achieved return against target return per dataset, mean over seeds with
    a 95% t-band, the oracle diagonal, and the best trajectory return in the dataset."""
    datasets = list(dict.fromkeys(sweeps["dataset"]))
    algos = sorted(sweeps["column"].unique())
    col, mark = colors(algos), markers(algos)
    fig, axes = _grid(len(datasets))
    for ax, d in zip(axes.flat, datasets):
        g_d = sweeps[sweeps["dataset"] == d]
        lo, hi = g_d["target_return"].min(), g_d["target_return"].max()
        ax.plot([lo, hi], [lo, hi], ls="--", color="grey", lw=1, label="oracle (achieved = target)")
        if d in best_returns:
            ax.axhline(best_returns[d], ls=":", color="black", lw=1, label="best trajectory in dataset")
        for a in algos:
            g = g_d[g_d["column"] == a].groupby("target_return")["return_mean"]
            if not len(g):
                continue
            t = np.array(sorted(g.groups))
            m = g.mean().loc[t].to_numpy()
            h = np.array([stats.t_halfwidth(g.get_group(x).to_numpy()) for x in t])
            ax.plot(t, m, color=col[a], marker=mark[a], ms=4, label=a)
            ax.fill_between(t, m - h, m + h, color=col[a], alpha=0.2, lw=0)
        ax.set_title(d, fontsize=10)
        ax.set_xlabel("target return")
        ax.set_ylabel("achieved return (undiscounted)")
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.06), frameon=False)
    fig.tight_layout()
    n = sweeps.groupby(["dataset", "column"])["seed"].nunique()
    episodes = sweeps["episodes"].dropna() if "episodes" in sweeps else pd.Series(dtype=float)
    per_target = f", {seeds_text(episodes).replace('seed', 'episode')} per target and seed" if len(episodes) else ""
    caption(fig, f"Mean over {seeds_text(n)}{per_target}; {BAND}")
    return save(fig, out, "return_conditioning")


def aggregate_intervals(agg: pd.DataFrame, score_name: str, out: Path) -> list[Path]:
    """One panel per aggregate (IQM, mean, median, optimality gap): point and 95% bootstrap interval."""
    metrics = list(dict.fromkeys(agg["metric"]))
    algos = list(dict.fromkeys(agg["algo"]))
    col = colors(sorted(algos))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 0.5 * len(algos) + 1.4), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        g = agg[agg["metric"] == metric].set_index("algo").loc[algos]
        y = np.arange(len(algos))
        for i, a in enumerate(algos):
            ax.plot([g.loc[a, "low"], g.loc[a, "high"]], [i, i], color=col[a], lw=6, alpha=0.6, solid_capstyle="butt")
            ax.plot([g.loc[a, "value"]], [i], "|", color="black", ms=12)
        ax.set_yticks(y, algos if ax is axes.flat[0] else [""] * len(algos))
        ax.set_title(metric + (" (lower is better)" if metric == "optimality gap" else ""), fontsize=10)
        ax.set_xlabel(score_name)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    caption(fig, f"Point estimate (black) and 95% stratified bootstrap interval over {int(agg['tasks'].iloc[0])} "
                 f"datasets x {int(agg['seeds'].iloc[0])} seeds")
    return save(fig, out, "aggregate_intervals")


def performance_profiles(profiles: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], taus: np.ndarray,
                         score_name: str, out: Path, runs: str = "") -> list[Path]:
    """Fraction of runs scoring above tau, with 95% bootstrap bands."""
    col, mark = colors(sorted(profiles)), markers(sorted(profiles))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for a, (m, lo, hi) in profiles.items():
        ax.plot(taus, m, color=col[a], label=a, marker=mark[a], ms=4, markevery=10)
        ax.fill_between(taus, lo, hi, color=col[a], alpha=0.2, lw=0)
    ax.set_xlabel(f"{score_name} threshold τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    caption(fig, f"Runs: {runs}; band: 95% stratified bootstrap interval" if runs else
            "Band: 95% stratified bootstrap interval")
    return save(fig, out, "performance_profiles")
