"""The MuJoCo suite on locally generated D4RL-recipe data: every algorithm, >= 3 seeds, orderings.

    OFFBENCH_HOME=... python benchmarks/mujoco_suite.py [--env hopper] [--seeds 3] [--steps 10000]
        [--slow-steps 1500] [--results benchmarks/results/mujoco_suite] [--workers N]

Needs ``offbench generate <env> --preset quick`` first (it is run if the sets are missing). Trains
bc, pbc (top 10% of timesteps), rwr, awr, td3bc, iql and awac for ``--steps`` on the medium,
medium-replay and medium-expert sets, and the two costly ones (cql, dt) for ``--slow-steps`` on
medium-replay, through the same library calls as ``offbench run``; 10 evaluation episodes every
``steps // 2`` (DT: 10 episodes per target instead of the paper's 100). Writes the table of
normalized scores (final evaluation, mean ± sample std over seeds) to
``benchmarks/mujoco_suite.md`` (other environments: ``mujoco_suite_<env>.md``) and checks the orderings the literature predicts: offline RL >= BC
on medium-replay, and BC on medium-expert >= BC on medium.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="hopper")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--slow-steps", type=int, default=1_500)
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/mujoco_suite"))
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--report-only", action="store_true", help="Tabulate what is in --results; train nothing.")
    args = ap.parse_args()
    levels = ["medium", "medium-replay", "medium-expert"]
    names = [f"{args.env}-{lv}-local" for lv in levels]
    if not all(n in all_specs() for n in names):
        from offbench.data.sources.generate import generate

        generate(args.env, "quick")
    t0 = time.perf_counter()
    common = [f"eval_every={args.steps // 2}", "eval_episodes=10", "pbc.fraction=0.1"]
    plans = plan_runs(names, FAST, args.seeds, args.results, common, steps=args.steps)
    plans += plan_runs([f"{args.env}-medium-replay-local"], SLOW, args.seeds, args.results,
                       [f"eval_every={args.slow_steps}", "eval_episodes=10"], steps=args.slow_steps)
    outcome = run_plans([] if args.report_only else plans, device=args.device, workers=args.workers)
    minutes = (time.perf_counter() - t0) / 60
    rep = build(args.results)
    cells = {(r.dataset, r.column): (r.mean, r.std, r.seeds) for r in rep.table.itertuples()}
    algos = FAST + SLOW
    lines = [f"Normalized score (local references: random policy 0, SAC expert 100), final evaluation, "
             f"mean ± sample std over {args.seeds} seeds, 10 episodes each. {', '.join(FAST)}: {args.steps} "
             f"gradient steps; {', '.join(SLOW)}: {args.slow_steps} (medium-replay only).", "",
             "| dataset | " + " | ".join(algos) + " |", "|---|" + "---|" * len(algos)]
    for d in names:
        row = [f"{cells[(d, a)][0]:.1f} ± {cells[(d, a)][1]:.1f}" if (d, a) in cells else "—" for a in algos]
        lines.append(f"| {d} | " + " | ".join(row) + " |")
    mr = f"{args.env}-medium-replay-local"
    bc_mr = cells[(mr, "bc")][0]
    checks = [f"{a} >= bc on medium-replay: {cells[(mr, a)][0]:.1f} vs {bc_mr:.1f} -> "
              f"{'holds' if cells[(mr, a)][0] >= bc_mr else 'FAILS'}" for a in OFFLINE_RL if (mr, a) in cells]
    me, m = cells[(f"{args.env}-medium-expert-local", "bc")][0], cells[(f"{args.env}-medium-local", "bc")][0]
    checks.append(f"bc medium-expert >= bc medium: {me:.1f} vs {m:.1f} -> {'holds' if me >= m else 'FAILS'}")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    lines += ["", "Orderings:", *[f"- {c}" for c in checks], "",
              f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {gpu}. "
              f"Wall time {minutes:.1f} min ({len(outcome.finished)} runs trained, {len(outcome.skipped)} reused)."
              if not args.report_only else f"Tabulated from the runs in {args.results} (--report-only)."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path("benchmarks/mujoco_suite.md" if args.env == "hopper" else f"benchmarks/mujoco_suite_{args.env}.md")
    out.write_text(text)
    if outcome.failed:
        raise SystemExit(f"{len(outcome.failed)} runs failed: {outcome.failed[0][1]}")


if __name__ == "__main__":
    main()
