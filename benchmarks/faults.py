"""Fault campaigns at large sizes: each promise of offbench as a figure (faults injected, outcomes
by kind, lost runs or files).

    python benchmarks/faults.py --campaign kill --n 200
    python benchmarks/faults.py --campaign chaos --n 1000
    python benchmarks/faults.py --campaign concurrency --n 20
    python benchmarks/faults.py --campaign limits --n 20
    python benchmarks/faults.py --campaign fuzz --seconds 3600

Each campaign (``tests/campaigns.py``; the test suite runs the same code at small sizes) runs in
a temporary directory with its own ``$OFFBENCH_HOME``, prints its figure, and stores it with the
machine, date and command in ``benchmarks/results/faults-<campaign>.json``; ``benchmarks/faults.md``
is then rewritten from every stored figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from machine import describe  # noqa: E402
from tests import campaigns  # noqa: E402

RESULTS = HERE / "results"
PROMISES = {
    "kill, Slurm tasks (submitit's local executor)": "The kill campaign with the runs as Slurm tasks through "
                                                     "submitit's local executor (`--launcher slurm --slurm-cluster "
                                                     "local`): the command and its task processes killed together.",
    "kill": "`offbench run` killed with SIGKILL at random moments (a quarter uniformly in time, the rest just "
            "inside an evaluation, a checkpoint write or a summary write), then resumed: every run's metrics and "
            "summary equal those of a run never interrupted; every record parses and every checkpoint loads; no "
            "process of the killed group survives; no lock or temporary file is left.",
    "chaos download": "`fetch` of a pinned D4RL file from a loopback server that cuts bodies, answers 500/503, "
                      "drips, lies about Content-Length, ignores Range or serves another file of the same size, "
                      "retried as its error says: each failed attempt is one line naming the URL, the cache never "
                      "holds another file, a fetch that ends gives the source's arrays.",
    "concurrency": "2 and 4 `offbench run` processes started together on one results tree, and 2 and 4 `fetch` "
                   "processes of one dataset: every process ends with exit 0, each run is trained once and equals "
                   "a run made alone, one downloaded file.",
    "limits": "`offbench run` under a file-size limit smaller than a checkpoint (RLIMIT_FSIZE) and under an "
              "address-space limit while it loads a dataset (RLIMIT_AS): a one-line error, the previous "
              "checkpoint byte-identical, the cache intact, and the same command without the limit finishes "
              "the run as a run never limited.",
    "fuzz": "mutated D4RL HDF5 files, Minari directories, DQN-replay checkpoints, .npz files and registry entries "
            "imported by `offbench register`'s reader (files and directories) or fetched from the registry entry: each ends in success or one "
            "OffbenchError line; a failure caches nothing; nothing is written outside $OFFBENCH_HOME.",
}


def run(args: argparse.Namespace) -> campaigns.Figure:
    with tempfile.TemporaryDirectory(prefix="offbench-faults-") as tmp:
        work = Path(tmp)
        os.environ["OFFBENCH_HOME"] = str(work / "home")
        os.environ.pop("OFFBENCH_DATASETS", None)
        if args.campaign == "kill":
            if args.slurm:
                fig = campaigns.kill_campaign(args.n, work, seed=args.seed, run_args=campaigns.KILL_RUN_SLURM)
                fig.campaign = "kill, Slurm tasks (submitit's local executor)"
                return fig
            return campaigns.kill_campaign(args.n, work, seed=args.seed)
        if args.campaign == "chaos":
            return campaigns.chaos_campaign(args.n, work, seed=args.seed)
        if args.campaign == "concurrency":
            return campaigns.concurrency_campaign(args.n, work, seed=args.seed)
        if args.campaign == "limits":
            return campaigns.limits_campaign(args.n, work, seed=args.seed)
        return campaigns.fuzz_campaign(work, seconds=args.seconds, seed=args.seed)


def write_markdown() -> str:
    lines = ["# Fault campaigns", "",
             "Each promise below was tested by injecting faults at random and checking every outcome; "
             "`lost` counts runs or files the promise failed for (each a finding to fix). Written by "
             "`benchmarks/faults.py` from `benchmarks/results/faults-*.json`; the test suite runs the same "
             "campaigns at small sizes (`tests/test_faults.py`).", ""]
    for path in sorted(RESULTS.glob("faults-*.json")):
        r = json.loads(path.read_text())
        lines += [f"## {r['campaign']}", "", PROMISES.get(r["campaign"], PROMISES.get(r["campaign"].split(",")[0], "")), "",
                  f"Faults injected: {r['faults']}. Lost: **{r['lost']}**. Seconds: {r['seconds']:.0f}.", "",
                  "| outcome | count |", "|---|---|",
                  *(f"| {k} | {v} |" for k, v in sorted(r["outcomes"].items())), ""]
        if r["problems"]:
            shown = list(dict.fromkeys(r["problems"]))[:20]
            lines += ["Findings (each fixed since and kept as a regular test in `tests/test_faults.py`; "
                      f"{len(shown)} of {len(r['problems'])} shown, duplicates merged):", "",
                      *(f"- {p}" for p in shown), ""]
        lines += [*([r["note"], ""] if r.get("note") else []),
                  f"Machine: {r['machine']}.", f"Date: {r['date']}. Command: `{r['command']}`.", ""]
    text = "\n".join(lines)
    (HERE / "faults.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", choices=["kill", "chaos", "concurrency", "limits", "fuzz"], required=True)
    parser.add_argument("--n", type=int, default=200, help="faults (kill, chaos) or rounds (concurrency, limits)")
    parser.add_argument("--seconds", type=float, default=3600.0, help="fuzz: how long to generate examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="", help="a note on this figure (its name and file), e.g. 'after the fixes'")
    parser.add_argument("--slurm", action="store_true", help="kill: runs as Slurm tasks (submitit's local executor)")
    args = parser.parse_args()
    fig = run(args)
    if args.label:
        fig.campaign += f", {args.label}"
    print(fig.line())
    for p in fig.problems:
        print("  " + p)
    command = "python benchmarks/faults.py --campaign " + args.campaign + (
        f" --seconds {args.seconds:g}" if args.campaign == "fuzz" else f" --n {args.n}") + f" --seed {args.seed}" + (
        " --slurm" if args.slurm else "") + (f" --label '{args.label}'" if args.label else "")
    RESULTS.mkdir(exist_ok=True)
    name = "-".join(fig.campaign.replace(",", "").replace("'", "").replace("(", "").replace(")", "").split())
    (RESULTS / f"faults-{name}.json").write_text(json.dumps({
        "campaign": fig.campaign, "faults": fig.faults, "outcomes": dict(fig.outcomes), "lost": fig.lost,
        "seconds": fig.seconds, "problems": fig.problems, "machine": describe(),
        "date": datetime.date.today().isoformat(), "command": command}, indent=2) + "\n")
    write_markdown()


if __name__ == "__main__":
    main()
