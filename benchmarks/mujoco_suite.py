"""The MuJoCo suite on locally generated D4RL-recipe data: every algorithm, >= 3 seeds, orderings.

    OFFBENCH_HOME=... python benchmarks/mujoco_suite.py [--env hopper] [--seeds 3] [--steps 10000]
        [--long-steps 30000] [--cql-steps 10000] [--dt-steps 1500]
        [--results benchmarks/results/mujoco_suite] [--workers N]

Needs ``offbench generate <env> --preset quick`` first (it is run if the sets are missing). Trains,
through the same library calls as ``offbench run``:

- bc, pbc (top 10% of timesteps), rwr, awr, td3bc, iql and awac for ``--steps`` on the medium,
  medium-replay and medium-expert sets, and the two costly ones on medium-replay: cql for
  ``--cql-steps`` and dt for ``--dt-steps``; 10 evaluation episodes every ``steps // 2`` (DT: 10
  episodes per target instead of the paper's 100);
- for ``--long-steps`` (0: not), in ``<results>-long``, evaluated every ``long_steps // 3``: BC
  on the three sets and td3bc, iql and awac on medium-replay. Short budgets are far from the
  published 1M steps, and value-based methods need longer than BC to pull ahead.

Writes the tables of normalized scores (final evaluation, mean ± sample std over seeds) to
``benchmarks/mujoco_suite.md`` (other environments: ``mujoco_suite_<env>.md``) and checks the
orderings the literature predicts: offline RL >= BC on medium-replay (each method against BC
trained for the same number of steps), and BC on medium-expert >= BC on medium; each judged at
the longest budget trained, the shorter ones listed beside it.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from offbench.data.spec import all_specs
from offbench.launch import plan_runs, run_plans
from offbench.report import build

FAST = ["bc", "pbc", "rwr", "awr", "td3bc", "iql", "awac"]
SLOW = ["cql", "dt"]
OFFLINE_RL = ["td3bc", "iql", "awac", "cql"]
LONG = ["td3bc", "iql", "awac"]  # trained for --long-steps on medium-replay, with BC on every set


def cells_of(results: Path) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(dataset, algorithm) -> (mean, sample std, seeds) of the final evaluation's normalized score."""
    if not results.exists():
        return {}
    rep = build(results)
    return {(r.dataset, r.column): (r.mean, r.std, r.seeds) for r in rep.table.itertuples()}


def cell(cells: dict, key: tuple[str, str], seeds: int) -> str:
    """``mean ± std``, with the number of seeds where it is not the table's."""
    if key not in cells:
        return "—"
    mean, std, n = cells[key]
    return f"{mean:.1f} ± {std:.1f}" + (f" ({n} seeds)" if n != seeds else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="hopper")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--long-steps", type=int, default=30_000)
    ap.add_argument("--cql-steps", type=int, default=10_000)
    ap.add_argument("--dt-steps", type=int, default=1_500)
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/mujoco_suite"))
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--report-only", action="store_true", help="Tabulate what is in --results; train nothing.")
    args = ap.parse_args()
    levels = ["medium", "medium-replay", "medium-expert"]
    names = [f"{args.env}-{lv}-local" for lv in levels]
    mr = f"{args.env}-medium-replay-local"
    long_results = args.results.with_name(args.results.name + "-long")
    if not all(n in all_specs() for n in names):
        from offbench.generate import generate

        generate(args.env, "quick")
    t0 = time.perf_counter()
    evals = ["eval_episodes=10"]
    plans = plan_runs(names, FAST, args.seeds, args.results, [f"eval_every={args.steps // 2}", *evals, "pbc.fraction=0.1"],
                      steps=args.steps)
    for algo, steps in (("cql", args.cql_steps), ("dt", args.dt_steps)):
        plans += plan_runs([mr], [algo], args.seeds, args.results, [f"eval_every={steps // 2}", *evals], steps=steps)
    if args.long_steps:
        long_sets = [f"eval_every={args.long_steps // 3}", *evals]
        plans += plan_runs(names, ["bc"], args.seeds, long_results, long_sets, steps=args.long_steps)
        plans += plan_runs([mr], LONG, args.seeds, long_results, long_sets, steps=args.long_steps)
    outcome = run_plans([] if args.report_only else plans, device=args.device, workers=args.workers,
                        check=False)
    minutes = (time.perf_counter() - t0) / 60
    short, long = cells_of(args.results), cells_of(long_results)
    algos = FAST + SLOW
    lines = [f"Normalized score (local references: random policy 0, SAC expert 100), final evaluation, "
             f"mean ± sample std over {args.seeds} seeds, 10 episodes each. {', '.join(FAST)}: {args.steps} "
             f"gradient steps; cql: {args.cql_steps}, dt: {args.dt_steps} (medium-replay only).", "",
             "| dataset | " + " | ".join(algos) + " |", "|---|" + "---|" * len(algos)]
    lines += [f"| {d} | " + " | ".join(cell(short, (d, a), args.seeds) for a in algos) + " |" for d in names]
    budgets = {args.steps: short}
    if long:
        budgets[args.long_steps] = long
        cols = [a for a in FAST if any((d, a) in long for d in names)]
        lines += ["", f"Trained longer: {args.long_steps} gradient steps, evaluated every {args.long_steps // 3} "
                  f"(same measure):", "",
                  "| dataset | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        lines += [f"| {d} | " + " | ".join(cell(long, (d, a), args.seeds) for a in cols) + " |" for d in names]
    checks = []
    for a in OFFLINE_RL:  # (steps of the method, steps of BC in the same cells, the cells), shortest first
        trained = sorted(((args.cql_steps if a == "cql" else n), n, c) for n, c in budgets.items()
                         if (mr, a) in c and (mr, "bc") in c)
        if not trained:
            continue
        n, bc_n, c = trained[-1]
        score, bc = c[(mr, a)][0], c[(mr, "bc")][0]
        others = "; ".join(f"at {m}: {o[(mr, a)][0]:.1f} vs {o[(mr, 'bc')][0]:.1f}" for m, _, o in trained[:-1])
        checks.append(f"{a} >= bc on medium-replay at {n} steps: {score:.1f} vs {bc:.1f}"
                      + (f" (bc at {bc_n} steps)" if bc_n != n else "")
                      + f" -> {'holds' if score >= bc else 'FAILS'}" + (f" ({others})" if others else ""))
    me_key, m_key = (f"{args.env}-medium-expert-local", "bc"), (f"{args.env}-medium-local", "bc")
    bc_budgets = sorted((n, c[me_key][0], c[m_key][0]) for n, c in budgets.items() if me_key in c and m_key in c)
    if bc_budgets:
        n, me, m = bc_budgets[-1]
        others = "; ".join(f"at {k}: {x:.1f} vs {y:.1f}" for k, x, y in bc_budgets[:-1])
        checks.append(f"bc medium-expert >= bc medium at {n} steps: {me:.1f} vs {m:.1f} -> "
                      f"{'holds' if me >= m else 'FAILS'}" + (f" ({others})" if others else ""))
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    lines += ["", "Orderings:", *[f"- {c}" for c in checks], "",
              f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {gpu}. "
              f"Wall time {minutes:.1f} min ({len(outcome.finished)} runs trained, {len(outcome.skipped)} reused)."
              if not args.report_only else f"Tabulated from the runs in {args.results}" + (f" and {long_results}" if args.long_steps else "")
              + " (--report-only)."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path("benchmarks/mujoco_suite.md" if args.env == "hopper" else f"benchmarks/mujoco_suite_{args.env}.md")
    out.write_text(text)
    if outcome.failed:
        raise SystemExit(f"{len(outcome.failed)} runs failed: {outcome.failed[0][1]}")


if __name__ == "__main__":
    main()
