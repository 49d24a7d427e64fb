"""Reproduce the Decision Transformer paper's Table 6 layout (Key-to-Door success rates).

    python benchmarks/keytodoor_table6.py [--seeds 3] [--dt-steps 20000] [--bc-steps 5000]
        [--results benchmarks/results/keytodoor] [--device auto] [--workers N]

Runs DT, %BC, BC and the random policy on keytodoor-1k and keytodoor-10k through the same
library calls as ``offbench run`` (finished runs are reused, interrupted ones resumed), then prints
the measured table next to the paper's numbers as Markdown and writes it to
``benchmarks/keytodoor_table6.md``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from offbench.launch import plan_runs, run_plans
from offbench.report import build

PAPER = {  # DT paper, Table 6: success rate (%)
    "keytodoor-1k": {"dt": 71.8, "pbc": 69.9, "bc": 1.4, "random": 3.1},
    "keytodoor-10k": {"dt": 94.6, "pbc": 95.1, "bc": 1.6, "random": 3.1},
}
ALGOS = ["dt", "pbc", "bc", "random"]


def machine() -> str:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {gpu}, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dt-steps", type=int, default=20_000)
    parser.add_argument("--bc-steps", type=int, default=5_000)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/keytodoor"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    datasets = list(PAPER)
    sets = [f"dt.steps={args.dt_steps}", f"dt.eval_every={args.dt_steps // 5}",
            f"pbc.steps={args.bc_steps}", f"bc.steps={args.bc_steps}"]
    t0 = time.perf_counter()
    plans = plan_runs(datasets, ALGOS, args.seeds, args.results, sets)
    outcome = run_plans(plans, device=args.device, workers=args.workers)
    minutes = (time.perf_counter() - t0) / 60
    rep = build(args.results)
    cells = {(r.dataset, r.column): (r.mean, r.std, r.seeds) for r in rep.table.itertuples()}
    lines = [
        f"Key-to-Door success rate (%), final evaluation, mean ± sample std over {args.seeds} seeds "
        f"(100 episodes each); paper value in brackets. DT {args.dt_steps} steps, %BC/BC {args.bc_steps} steps.",
        "",
        "| dataset | " + " | ".join(ALGOS) + " |",
        "|---|" + "---|" * len(ALGOS),
    ]
    for d in datasets:
        row = []
        for a in ALGOS:
            m, s, n = cells.get((d, a), (float("nan"), float("nan"), 0))
            row.append(f"{m:.1f} ± {s:.1f} [{PAPER[d][a]}]")
        lines.append(f"| {d} | " + " | ".join(row) + " |")
    lines += ["", f"Machine: {machine()}. Wall time: {minutes:.1f} min "
              f"({len(outcome.finished)} runs trained, {len(outcome.skipped)} reused)."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path("benchmarks/keytodoor_table6.md").write_text(text)
    if outcome.failed:
        raise SystemExit(f"{len(outcome.failed)} runs failed: {outcome.failed[0][1]}")


if __name__ == "__main__":
    main()
