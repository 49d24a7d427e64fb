"""`offbench reproduce`: published tables in one command, and the lecture's deadly triad."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from offbench import reproduce as rp
from offbench.devices import resolve_device
from offbench.launch import LocalLauncher
from offbench.reproduce import deadly_triad
from tests.test_cli import offbench, one_line_error


def test_the_deadly_triad_diverges_naively_and_stays_bounded_when_constrained(tmp_path: Path) -> None:
    result = deadly_triad.run()
    naive, constrained, cql = (np.abs(result["linear"][m]["q_unseen"]) for m in ("naive", "constrained", "cql"))
    # naive: Q(s1, unseen) grows geometrically (by 1 + lr (2 gamma - 1) per iteration), though every true value is 0
    assert naive[-1] > 1e12 and np.all(np.diff(naive[50:]) > 0)
    assert constrained.max() < 1.0 and constrained[-1] < 1e-6  # the data's actions only: decays to the truth
    assert cql.max() < 1.0  # the penalty holds the unseen action down
    tab = result["tabular"]
    # the table's missing entries keep their 0 (above every true value): naive bootstraps from them
    assert tab["naive"]["final_error"] > 1.0 and tab["naive"]["greedy_outside_data"] > 0.5
    assert tab["constrained"]["final_error"] < 1e-9 and tab["constrained"]["greedy_outside_data"] == 0.0
    p = offbench("reproduce", "deadly-triad", "--out", str(tmp_path / "triad"), timeout=60)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "triad" / "deadly_triad.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "triad" / "deadly_triad.json").read_text())["linear"]["naive"]["max_abs_q"] > 1e12
    example = Path(__file__).parents[1] / "examples" / "deadly_triad" / "run.py"
    p = subprocess.run([sys.executable, str(example), str(tmp_path / "example")], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "naive" in p.stdout and (tmp_path / "example" / "deadly_triad.png").exists(), p.stderr


def test_reproduce_lists_plans_and_refuses_what_it_cannot_do() -> None:
    listing = offbench("reproduce", "--list")
    assert listing.returncode == 0 and all(name in listing.stdout for name in rp.names())
    dry = offbench("reproduce", "dt-table2", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    for dataset in rp.D4RL_GYM:
        for algo in ("dt", "cql", "bear", "brac", "awr", "bc"):
            assert f"{dataset} / {algo}: 3 seeds" in dry.stdout
    assert "162 runs; about" in dry.stdout and "CPU-core hours of training for 162 of them" in dry.stdout
    assert "GPU hours" in dry.stdout
    line = one_line_error(offbench("reproduce", "dt-table9"), 2)
    assert "unknown table 'dt-table9'" in line and "dt-table6" in line
    line = one_line_error(offbench("reproduce", "dt-table6", "--device", "cpu"), 2)
    assert "without a GPU" in line and "--yes" in line and "50 runs" in line


def test_a_table_is_fetched_run_and_reported_beside_the_published_numbers(tmp_path: Path) -> None:
    table = rp.Table("mini-table6", "Chen et al. 2021, Decision Transformer, Table 6", ("keytodoor-1k",),
                     ("bc", "random"), 2, quick=("steps=20", "eval_every=0"), quick_seeds=1, quick_episodes=3)
    results, out = tmp_path / "results", tmp_path / "out"
    plans = rp.plan(table, "quick", results)
    res = rp.reproduce(table, "quick", plans, results, out, LocalLauncher(1, 1), resolve_device("cpu"))
    assert len(res["outcome"].finished) == 2
    md = (out / "table.md").read_text()
    assert "keytodoor-1k" in md and "not the paper's budget" in md
    comparison = res["extras"].comparison
    published = {(r["dataset"], r["algo"]): r["published"] for r in comparison.to_dict("records")}
    assert published[("keytodoor-1k", "random")] == 3.1 and published[("keytodoor-1k", "bc")] == 1.4
