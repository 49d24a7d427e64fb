"""``offbench reproduce TABLE``: a published table in one command. Each :class:`Table` names its
datasets, algorithms (the paper's columns), seeds and two budgets: ``paper`` (every algorithm's
published defaults, as ``offbench run`` uses them) and ``quick`` (a CPU-sized budget, labelled as
not the paper's wherever the table is shown). :func:`reproduce` fetches the data, plans every
(dataset, algorithm, seed), runs the plan through the chosen launcher, and writes the table beside
the published numbers and its figures. ``deadly-triad`` is the lecture's experiment
(:mod:`offbench.reproduce.deadly_triad`), not a results table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offbench.errors import UsageError

D4RL_GYM = tuple(f"{env}-{level}" for level in ("medium-expert", "medium", "medium-replay")
                 for env in ("halfcheetah", "hopper", "walker2d"))


@dataclass(frozen=True)
class Table:
    """One published table: where it is from, its rows, its columns and the budgets."""

    name: str
    source: str
    datasets: tuple[str, ...]
    algos: tuple[str, ...]
    seeds: int
    quick: tuple[str, ...] = ()  # `--set` overrides of the quick budget
    quick_seeds: int = 2
    quick_episodes: int = 5
    note: str = ""
    sets: tuple[str, ...] = field(default=())  # overrides both budgets share (e.g. a recipe)

    def overrides(self, budget: str) -> list[str]:
        return [*self.sets, *(self.quick if budget == "quick" else ())]


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("dt-table1", "Chen et al. 2021, Decision Transformer, Table 1 (Atari, 1% DQN-replay)",
          ("breakout-1pct", "qbert-1pct", "pong-1pct", "seaquest-1pct"), ("dt", "cql", "qrdqn", "rem", "gptbc"), 3,
          quick=("steps=200",), quick_seeds=1, quick_episodes=1,
          note="CQL, QR-DQN and REM at offbench's Atari budget (20k gradient steps), not the 12.5M updates "
               "behind the published numbers; CQL is offbench's CQL(H) on a DQN backbone"),
    Table("dt-table2", "Chen et al. 2021, Decision Transformer, Table 2 (D4RL)", D4RL_GYM,
          ("dt", "cql", "bear", "brac", "awr", "bc"), 3,
          # quick: BEAR's MMD-only warm start, BRAC's behaviour phase and its warm start scaled down
          # with the budget, in the D4RL recipes' proportions (40k of 3M steps; 1M of 2M; 20k of 1M)
          quick=("steps=2000", "eval_every=0", "bear.warmup_steps=27", "brac.behavior_steps=1000",
                 "brac.warmup_steps=20"),
          sets=("bc.recipe=paper",)),
    Table("dt-table4", "Chen et al. 2021, Decision Transformer, Table 4 (delayed reward)",
          tuple(f"{env}-medium-expert-sparse" for env in ("halfcheetah", "hopper", "walker2d")),
          ("dt", "cql", "bc", "pbc"), 3, quick=("steps=2000", "eval_every=0"), sets=("bc.recipe=paper",)),
    Table("dt-table6", "Chen et al. 2021, Decision Transformer, Table 6 (Key-to-Door success rate)",
          ("keytodoor-1k", "keytodoor-10k"), ("dt", "cql", "bc", "pbc", "random"), 5,
          quick=("dt.steps=1000", "cql.steps=1000", "bc.steps=1000", "pbc.steps=1000", "eval_every=0"),
          quick_seeds=2, quick_episodes=20),
    Table("corl-gym", "Tarasov et al. 2022, CORL, D4RL locomotion (final scores)", D4RL_GYM,
          ("bc", "pbc", "td3bc", "awac", "cql", "iql", "dt"), 4, quick=("steps=2000", "eval_every=0")),
)}
LECTURES = {"deadly-triad": "Sutton & Barto's deadly triad in offline Q-learning: naive diverges, constrained stays "
                            "bounded (linear and tabular)"}


def names() -> list[str]:
    return [*TABLES, *LECTURES]


def get_table(name: str) -> Table:
    if name not in TABLES:
        raise UsageError(f"unknown table '{name}'; tables: {', '.join(names())}")
    return TABLES[name]


#: Gradient steps per second of one seed on one CPU core on D4RL-shaped data (17-d states,
#: 6-d actions), as benchmarks/RESULTS.md records them (AMD EPYC, torch 2.13.0+cpu): used to
#: estimate a D4RL plan's compute (BEAR and BRAC-v's behaviour phase: at their D4RL recipes, scaled
#: by GFLOP per step, see there). Other domains (Atari frames, Key-to-Door) have no figure.
CPU_STEPS_PER_SECOND = {"bc": 408.6, "pbc": 480.2, "td3bc": 131.0, "iql": 93.4, "cql": 5.0, "awac": 84.0,
                        "dt": 4.6, "awr": 246.8, "rwr": 468.0, "bcq": 29.3, "bear": 18.7, "brac": 88.3}
#: Phases at another speed: BRAC's first ``behavior_steps`` fit the behaviour policy alone.
FIRST_PHASE = {"brac": ("behavior_steps", 352.2)}


@dataclass
class Estimate:
    """A plan's runs and the compute it needs where figures exist."""

    runs: int
    cpu_hours: float
    unknown: dict[str, int]  # algorithm -> runs without a speed figure

    def lines(self) -> list[str]:
        counted = self.runs - sum(self.unknown.values())
        known = f"about {self.cpu_hours:,.1f} CPU-core hours of training for {counted} of them (evaluation not " \
                "included), from the one-core speeds recorded in benchmarks/RESULTS.md" if counted else \
                "CPU-core hours unknown (no speed is recorded for this data's shape)"
        out = [f"{self.runs} runs; {known}"]
        if self.unknown:
            out.append("no speed figure for " + ", ".join(f"{a} ({n} runs)" for a, n in sorted(self.unknown.items()))
                       + ": not counted")
        out.append("GPU hours: no GPU figure is recorded in benchmarks/ (measure with "
                   "'python benchmarks/throughput.py --device cuda')")
        return out


def estimate(plans: list[Any]) -> Estimate:
    hours, unknown = 0.0, {}
    for p in plans:
        rate = CPU_STEPS_PER_SECOND.get(p.algo) if p.spec.domain == "mujoco" else None
        if rate is None:
            unknown[p.algo] = unknown.get(p.algo, 0) + 1
            continue
        steps, seconds = p.config.steps, 0.0
        if p.algo in FIRST_PHASE:
            field_name, first_rate = FIRST_PHASE[p.algo]
            first = min(steps, int(getattr(p.config, field_name)))
            seconds, steps = first / first_rate, steps - first
        hours += (seconds + steps / rate) / 3600
    return Estimate(len(plans), hours, unknown)


def plan(table: Table, budget: str, results: Path) -> list[Any]:
    """Every (dataset, algorithm, seed) of ``table`` at ``budget``, as ``offbench run`` plans them."""
    from offbench.launch import plan_runs

    if budget not in ("quick", "paper"):
        raise UsageError(f"unknown budget '{budget}'; budgets: quick, paper")
    seeds = table.quick_seeds if budget == "quick" else table.seeds
    episodes = table.quick_episodes if budget == "quick" else None
    return plan_runs(list(table.datasets), list(table.algos), seeds, results, table.overrides(budget), None, episodes)


def cached(table: Table) -> dict[str, bool]:
    from offbench.data import cache

    return {d: cache.is_cached(d) for d in table.datasets}


def listing() -> list[dict[str, Any]]:
    """One row per table: name, source, and how many of its datasets are cached."""
    rows = []
    for t in TABLES.values():
        have = cached(t)
        rows.append({"name": t.name, "source": t.source, "datasets": len(t.datasets),
                     "cached": f"{sum(have.values())}/{len(have)}", "algos": ",".join(t.algos), "seeds": t.seeds})
    rows += [{"name": n, "source": s, "datasets": 0, "cached": "-", "algos": "-", "seeds": 0} for n, s in LECTURES.items()]
    return rows


def run_lecture(name: str, out: Path) -> dict[str, Any]:
    """The deadly triad: both experiments, the figure and the numbers, into ``out``."""
    from offbench.reproduce import deadly_triad

    result = deadly_triad.run()
    out.mkdir(parents=True, exist_ok=True)
    figure = deadly_triad.figure(result, out / "deadly_triad.png")
    (out / "deadly_triad.json").write_text(json.dumps(result))
    return {"figure": str(figure), "json": str(out / "deadly_triad.json"),
            "linear_max_abs_q": {k: v["max_abs_q"] for k, v in result["linear"].items()},
            "tabular_final_error": {k: v["final_error"] for k, v in result["tabular"].items()}}


def reproduce(table: Table, budget: str, plans: list[Any], results: Path, out: Path, launcher: Any, device: Any,
              report: Callable[..., None] | None = None) -> dict[str, Any]:
    """Fetch, run ``plans`` (:func:`plan`) and report ``table`` (see the module docstring); returns
    the outcome and the paths written."""
    from offbench.data import cache
    from offbench.launch import run_plans
    from offbench.report import build
    from offbench.report.outputs import write_plots, write_tables
    from offbench.report.published import compare, load_published
    from offbench.report.render import Extras, render

    fetched = cache.fetch_many(list(table.datasets))
    failed = [f for f in fetched if f.error is not None]
    if failed:
        raise UsageError(f"{table.name}: cannot fetch {failed[0].name}: {failed[0].error}")
    outcome = run_plans(plans, device=device, report=report, check=False, launcher=launcher)
    rep = build(results, "last", False, list(table.algos), list(table.datasets), {})
    if budget == "quick":
        rep.note += (f" Budget: quick ({', '.join(table.quick) or 'the defaults'}; {table.quick_seeds} seeds, "
                     f"{table.quick_episodes} evaluation episodes): a CPU-sized run, not the paper's budget.")
    if table.note:
        rep.note += f" {table.note}."
    extras = Extras(comparison=compare(rep.table, load_published("published")))
    out.mkdir(parents=True, exist_ok=True)
    markdown, _ = render(rep, extras, "md")
    (out / "table.md").write_text(markdown)
    written = write_tables(rep, out)
    figures, skipped = write_plots(rep, out)
    return {"outcome": outcome, "report": rep, "extras": extras, "markdown": markdown,
            "written": [*written, *figures, out / "table.md"], "skipped": skipped}
