"""Reproduce the Decision Transformer paper's Table 6 (Key-to-Door success rates), every column.

    python benchmarks/keytodoor_table6.py [--seeds 5] [--results benchmarks/results/keytodoor]
        [--device auto] [--workers N] [--set KEY=VALUE ...]

Runs DT, CQL, BC, %BC and the random policy on keytodoor-1k and keytodoor-10k with offbench's
defaults (the same library calls as ``offbench run``: finished runs are reused, interrupted ones
resumed), prints the table beside the paper's numbers with every seed's value, checks the targets
(DT and %BC: >= 85% mean on 10K with no seed below 70%, >= 60% on 1K) and writes it all, with the
machine, date and command, to ``benchmarks/keytodoor_table6.md``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from machine import describe
from offbench.launch import plan_runs, run_plans
from offbench.report import build

PAPER = {  # DT paper, Table 6: success rate (%)
    "keytodoor-1k": {"dt": 71.8, "cql": 13.1, "bc": 1.4, "pbc": 69.9, "random": 3.1},
    "keytodoor-10k": {"dt": 94.6, "cql": 13.3, "bc": 1.6, "pbc": 95.1, "random": 3.1},
}
ALGOS = ["dt", "cql", "bc", "pbc", "random"]
#: (dataset, minimum mean, minimum seed) for DT and %BC
TARGETS = {"keytodoor-10k": (85.0, 70.0), "keytodoor-1k": (60.0, None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/keytodoor"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="as offbench run --set")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("keytodoor_table6.md"))
    args = parser.parse_args()
    datasets = list(PAPER)
    t0 = time.perf_counter()
    plans = plan_runs(datasets, ALGOS, args.seeds, args.results, args.sets)
    outcome = run_plans(plans, device=args.device, workers=args.workers, check=False)
    minutes = (time.perf_counter() - t0) / 60
    rep = build(args.results, algos=ALGOS, envs=datasets)
    runs = rep.runs
    steps = {a: sorted({int(p.config.steps) for p in plans if p.algo == a}) for a in ALGOS}
    lines = [
        f"Key-to-Door success rate (%), final evaluation (last), mean ± sample std over {args.seeds} seeds, "
        "100 evaluation episodes per seed; the paper's value in brackets; every seed's value below the table.",
        "",
        "| dataset | " + " | ".join(ALGOS) + " |",
        "|---|" + "---|" * len(ALGOS),
    ]
    per_seed, checks = [], []
    for d in datasets:
        row = []
        for a in ALGOS:
            v = runs[(runs["dataset"] == d) & (runs["column"] == a)].sort_values("seed")["score_last"].to_numpy()
            if len(v) == 0:
                row.append(f"— [{PAPER[d][a]}]")
                continue
            std = f"{v.std(ddof=1):.1f}" if len(v) > 1 else "n/a"
            row.append(f"{v.mean():.1f} ± {std} [{PAPER[d][a]}]")
            per_seed.append(f"- {d} {a}: {', '.join(f'{x:.0f}' for x in v)}")
            if a in ("dt", "pbc"):
                mean_min, seed_min = TARGETS[d]
                ok = v.mean() >= mean_min and (seed_min is None or v.min() >= seed_min)
                want = f">= {mean_min:.0f} mean" + (f", every seed >= {seed_min:.0f}" if seed_min else "")
                checks.append(f"- {a} on {d}: {v.mean():.1f} mean, lowest seed {v.min():.0f} "
                              f"(target {want}) -> {'meets' if ok else 'MISSES'}")
        lines.append(f"| {d} | " + " | ".join(row) + " |")
    budget = ", ".join(f"{a} {'/'.join(f'{s:,}' for s in steps[a])}" for a in ALGOS if a != "random")
    lines += ["", f"Gradient steps: {budget}. {rep.note}", "", "Every seed:", *per_seed, "", "Targets:", *checks, "",
              f"Command: `python benchmarks/keytodoor_table6.py {' '.join(sys.argv[1:])}`",
              f"Machine: {describe()}. Date: {datetime.date.today().isoformat()}. "
              f"Wall time: {minutes:.1f} min ({len(outcome.finished)} runs trained, {len(outcome.skipped)} reused)."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)
    if outcome.failed:
        raise SystemExit(f"{len(outcome.failed)} runs failed: {outcome.failed[0][1]}")


if __name__ == "__main__":
    main()
