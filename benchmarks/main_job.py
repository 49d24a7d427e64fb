"""Run the README's main job exactly as the quick start does and record its table and time.

    python benchmarks/main_job.py [--isa native|avx2|sse41] [--out benchmarks/main_job.md]

The commands are the README's (read from it, so the two cannot drift): ``offbench fetch``,
``offbench run`` and ``offbench report``, each a fresh process with an empty cache and results
directory, timed from ``fetch`` to ``report``. ``--isa`` sets torch's kernels as the test suite's
portability check does (``avx2``: ``ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
ATEN_CPU_CAPABILITY=avx2``). Writes the report's Markdown table, every seed's score, the wall
time, the machine, date and command to ``--out`` (the README's table is copied from the file
``--isa native`` writes; a test checks that they agree).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

ROOT = Path(__file__).resolve().parents[1]
ISAS = {
    "native": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "default"},
}


def readme_commands() -> list[list[str]]:
    """The offbench commands of the README's first quick-start line (after the install)."""
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines()
                if "offbench run --algo" in ln and "pip install" in ln)
    parts = [p.strip() for p in line.strip().split("&&")]
    return [shlex.split(p.replace(".venv/bin/offbench", "offbench"))[1:] for p in parts if ".venv/bin/offbench" in p]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", choices=list(ISAS), default="native")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(__file__).with_name("main_job.md" if args.isa == "native" else f"main_job_{args.isa}.md")
    commands = readme_commands()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **ISAS[args.isa], "OFFBENCH_HOME": str(Path(tmp) / "home"),
               "OFFBENCH_RESULTS": str(Path(tmp) / "results"), "MPLBACKEND": "Agg"}
        t0 = time.perf_counter()
        for cmd in commands:
            p = subprocess.run([sys.executable, "-m", "offbench", *cmd], env=env, capture_output=True, text=True,
                               cwd=tmp)
            if p.returncode != 0:
                raise SystemExit(f"offbench {' '.join(cmd)} failed: {p.stderr.strip()[-500:]}")
        seconds = time.perf_counter() - t0
        table = subprocess.run([sys.executable, "-m", "offbench", "report", "--format", "md"], env=env,
                               capture_output=True, text=True, cwd=tmp, check=True).stdout
        runs = json.loads(subprocess.run([sys.executable, "-m", "offbench", "report", "--json"], env=env,
                                         capture_output=True, text=True, cwd=tmp, check=True).stdout)
        seeds = []
        for path in sorted((Path(tmp) / "results").glob("*/*/*/seed-*/summary.json")):
            s = json.loads(path.read_text())
            seeds.append((s["algo"], s["seed"], s["score_last"]))
    per_algo: dict[str, list[str]] = {}
    for algo, _, score in sorted(seeds):
        per_algo.setdefault(algo, []).append(f"{score:.0f}")
    cpu = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                         env={**os.environ, **ISAS[args.isa]}, capture_output=True, text=True).stdout.strip()
    text = "\n".join([
        f"# The README's main job ({args.isa} kernels: CPU capability {cpu})", "",
        "<!-- table -->", table.strip(), "<!-- /table -->", "",
        "Every seed (final evaluation, success rate %): "
        + "; ".join(f"{a} {', '.join(v)}" for a, v in per_algo.items()) + ".", "",
        f"Wall time from `fetch` to `report`: {seconds:.0f} s ({len(runs['rows'])} cells, "
        f"{len(seeds)} runs).", "",
        "Commands: " + "; ".join(f"`offbench {' '.join(c)}`" for c in commands) + ".",
        f"Recorded by: `python benchmarks/main_job.py --isa {args.isa}`.",
        f"Machine: {describe()}. Date: {datetime.date.today().isoformat()}.", "",
    ])
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
