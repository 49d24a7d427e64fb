"""Aggregate statistics across tasks with stratified bootstrap confidence intervals.

The estimators of Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical Precipice",
rliable), implemented with numpy because rliable 1.2 does not import with pandas 3. A score
matrix has one row per run (seed) and one column per task (dataset). The stratified bootstrap
resamples runs with replacement within each task; intervals are percentile intervals. Every
bootstrap is vectorized: ``reps`` resamples are one array operation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

Aggregate = Callable[[np.ndarray], np.ndarray]  # (..., runs, tasks) -> (...)


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over all runs and tasks: the mean of the middle 50% of scores."""
    flat = scores.reshape(*scores.shape[:-2], -1)
    return stats.trim_mean(flat, proportiontocut=0.25, axis=-1)


def mean(scores: np.ndarray) -> np.ndarray:
    """Mean over tasks of the per-task mean score."""
    return scores.mean(axis=-2).mean(axis=-1)


def median(scores: np.ndarray) -> np.ndarray:
    """Median over tasks of the per-task mean score."""
    return np.median(scores.mean(axis=-2), axis=-1)


def optimality_gap(scores: np.ndarray, gamma: float = 100.0) -> np.ndarray:
    """How far scores fall short of ``gamma`` (the score of a solved task), on average: ``gamma -
    mean(min(score, gamma))``. Lower is better."""
    return gamma - np.minimum(scores, gamma).mean(axis=(-2, -1))


AGGREGATES: dict[str, Aggregate] = {"IQM": iqm, "mean": mean, "median": median, "optimality gap": optimality_gap}


def stratified_resamples(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, runs, tasks): each task's runs resampled with replacement, independently per task."""
    runs, tasks = scores.shape
    idx = rng.integers(0, runs, size=(reps, runs, tasks))
    return np.take_along_axis(np.broadcast_to(scores, (reps, runs, tasks)), idx, axis=1)


def interval(statistic: Aggregate, scores: np.ndarray, reps: int = 2000, confidence: float = 0.95,
             seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, low, high): the statistic and its stratified-bootstrap percentile interval."""
    scores = np.asarray(scores, dtype=np.float64)
    boot = statistic(stratified_resamples(scores, reps, np.random.default_rng(seed)))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return float(statistic(scores)), float(lo), float(hi)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y): per task the Mann-Whitney probability that a run of X beats a run of Y (ties
    count half), averaged over tasks. ``x``: (..., runs_x, tasks), ``y``: (..., runs_y, tasks)."""
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return (gt + 0.5 * eq).mean(axis=-1)


def poi_interval(x: np.ndarray, y: np.ndarray, reps: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """P(X > Y) with a stratified-bootstrap interval (both algorithms' runs resampled per task)."""
    rng = np.random.default_rng(seed)
    bx, by = stratified_resamples(x, reps, rng), stratified_resamples(y, reps, rng)
    boot = probability_of_improvement(bx, by)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return float(probability_of_improvement(x, y)), float(lo), float(hi)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Run-score distribution: for each threshold tau, the fraction of runs scoring above tau,
    averaged over tasks. ``scores`` (..., runs, tasks) -> (..., len(taus))."""
    above = scores[..., None] > taus  # (..., runs, tasks, taus)
    return above.mean(axis=-3).mean(axis=-2)


def profile_band(scores: np.ndarray, taus: np.ndarray, reps: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The performance profile and its pointwise stratified-bootstrap interval."""
    boot = performance_profile(stratified_resamples(np.asarray(scores, float), reps, np.random.default_rng(seed)), taus)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    return performance_profile(np.asarray(scores, float), taus), lo, hi


def t_halfwidth(values: np.ndarray, confidence: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean (NaN, undefined, for fewer than
    2 values)."""
    n = len(values)
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1) * np.std(values, ddof=1) / np.sqrt(n))
