"""Paper-grade reports from a results tree made by real runs: tables, statistics, figures."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from offbench.report import stats
from tests.test_cli import offbench

DATASETS = ["keytodoor-1k", "keytodoor-1k-sparse"]
ALGOS = ["bc", "dt", "random"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """2 datasets x 3 algorithms x 3 seeds at tiny budgets, plus a DT return-conditioning sweep."""
    home = tmp_path_factory.mktemp("home")
    root = home / "results"
    env = {"OFFBENCH_HOME": str(home / "cache"), "OFFBENCH_RESULTS": str(root)}
    p = offbench("run", "--algo", ",".join(ALGOS), "--env", ",".join(DATASETS), "--seeds", "3", "--steps", "40",
                 "--eval-episodes", "10", "--set", "eval_every=20", "--set", "dt.embed_dim=16", "--workers", "2", env=env)
    assert p.returncode == 0, p.stderr
    p = offbench("evaluate", "--env", "keytodoor-1k", "--algo", "dt", "--sweep", "--targets", "0,0.5,1",
                 "--episodes", "6", env=env)
    assert p.returncode == 0, p.stderr
    return root, env


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/*/*/seed-*/summary.json"))]


def test_table_numbers_match_a_hand_computation(tree) -> None:
    root, env = tree
    runs = summaries(root)
    csv = offbench("report", "--format", "csv", "--ci", env=env).stdout.strip().splitlines()
    assert csv[0] == "dataset,algo,mean,std,ci95,seeds,steps,domain"
    assert len(csv) == 1 + len(DATASETS) * len(ALGOS)
    for line in csv[1:]:
        dataset, algo, mean, std, ci95, seeds, steps, domain = line.split(",")
        v = np.array([r["score_last"] for r in runs if r["algo"] == algo and r["dataset"] == dataset])
        assert len(v) == 3 == int(seeds) and domain == "keytodoor"
        assert float(mean) == pytest.approx(v.mean(), abs=1e-3)
        assert float(std) == pytest.approx(v.std(ddof=1), abs=1e-3)
        assert float(ci95) == pytest.approx(sps.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3), abs=1e-3)
    best = summaries(root)
    md = offbench("report", "--format", "md", "--stat", "best", env=env).stdout
    assert "best evaluation during training" in md and "seeds: 3" in md and "gradient steps: 0, 40" in md
    bc = [r["score_best"] for r in best if r["algo"] == "bc" and r["dataset"] == "keytodoor-1k"]
    assert f"{np.mean(bc):.1f} ± {np.std(bc, ddof=1):.1f}" in md
    assert "*keytodoor average (2)*" in md  # the domain average row
    means = {a: np.mean([r["score_last"] for r in runs if r["algo"] == a and r["dataset"] == "keytodoor-1k"])
             for a in ALGOS}
    row = next(line for line in offbench("report", "--format", "md", env=env).stdout.splitlines()
               if line.startswith("| keytodoor-1k |"))
    best_algo = max(means, key=means.get)
    assert row.split("|")[2 + sorted(ALGOS, key=lambda c: (c == "random", c)).index(best_algo)].strip().startswith("**")


def test_filters_and_every_output_file(tree, tmp_path: Path) -> None:
    root, env = tree
    md = offbench("report", "--format", "md", "--algo", "b*", "--env", "*-sparse", env=env).stdout
    assert "keytodoor-1k-sparse" in md and "| keytodoor-1k |" not in md and "dt" not in md.splitlines()[0]
    out = tmp_path / "report"
    p = offbench("report", "--out", str(out), "--plots", env=env)
    assert p.returncode == 0, p.stderr
    for name in ("table.md", "table.tex", "table.csv", "aggregates.csv"):
        assert (out / name).stat().st_size > 100
    from PIL import Image

    for fig in ("learning_curves", "return_conditioning", "aggregate_intervals", "performance_profiles"):
        assert (out / f"{fig}.pdf").stat().st_size > 2000
        img = np.asarray(Image.open(out / f"{fig}.png").convert("L"), dtype=float)
        assert img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 10  # drawn, not blank


def test_latex_table_compiles(tree, tmp_path: Path) -> None:
    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex is not installed")
    root, env = tree
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
                   + offbench("report", "--format", "latex", "--ci", env=env).stdout + "\\end{document}\n")
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", doc.name], cwd=tmp_path, capture_output=True)
    assert r.returncode == 0, r.stdout[-2000:]


def test_aggregates_poi_and_comparison_through_the_cli(tree) -> None:
    root, env = tree
    p = offbench("report", "--aggregate", "--poi", "dt", "random", "--compare", "published", env={**env, "COLUMNS": "250"})
    assert p.returncode == 0, p.stderr
    assert "IQM" in p.stdout and "optimality gap" in p.stdout and "P(dt > random)" in p.stdout
    assert "Chen et al. 2021" in p.stdout and "keytodoor-1k" in p.stdout  # Table 6 next to the measured values
    bad = offbench("report", "--poi", "dt", "cql", env=env)
    assert bad.returncode == 2 and "cql" in bad.stderr


def test_bad_records_are_skipped_with_one_warning_each(tree, tmp_path: Path) -> None:
    root, env = tree
    copy = tmp_path / "results"
    shutil.copytree(root, copy)
    runs = sorted(copy.glob("keytodoor-1k/bc/*/seed-*"))
    (runs[0] / "summary.json").unlink()  # a crashed run
    (runs[1] / "summary.json").write_text('{"dataset": "keytodoor-1k", "algo"')  # truncated
    with open(runs[2] / "metrics.jsonl", "a") as f:
        f.write('{"kind": "eval", "step": 4')  # a torn line
    p = offbench("report", "--results", str(copy), "--out", str(tmp_path / "o"), "--plots", env=env)
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if line.startswith("warning: skipping")]
    assert len(warnings) == 3, p.stderr
    # bc on keytodoor-1k is left with one seed: its cell is flagged, and shown without a spread
    assert "1 of 6 cells rest on fewer than 3 seeds (fewest: 1)" in p.stderr
    assert "(1 seed)" in (tmp_path / "o" / "table.md").read_text()
    assert any("unfinished" in w for w in warnings) and any("not a complete run summary" in w for w in warnings)
    assert any("line" in w and "metrics.jsonl" in w for w in warnings)


def test_mixed_configs_are_separate_columns(tree, tmp_path: Path) -> None:
    root, env = tree
    copy = tmp_path / "results"
    shutil.copytree(root, copy)
    env2 = {**env, "OFFBENCH_RESULTS": str(copy)}
    p = offbench("run", "--algo", "bc", "--env", "keytodoor-1k", "--seeds", "1", "--steps", "20",
                 "--eval-episodes", "5", "--set", "lr=0.01", env=env2)
    assert p.returncode == 0, p.stderr
    lines = offbench("report", "--format", "md", env=env2).stdout.splitlines()
    header = [c.strip() for c in lines[0].split("|")]
    bc_cols = [i for i, c in enumerate(header) if c.startswith("bc@")]
    assert len(bc_cols) == 2
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")] for line in lines[2:]
            if line.startswith("| keytodoor-1k")}
    # the first config has one column with values on both datasets; the new config only on keytodoor-1k
    filled = sorted(sum(rows[d][i] != "—" for d in DATASETS) for i in bc_cols)
    assert filled == [1, 2], rows
    csv = offbench("report", "--format", "csv", env=env2).stdout
    ids = sorted({line.split(",")[1].split("@")[1] for line in csv.splitlines()[1:] if line.split(",")[1].startswith("bc@")})
    labelled = offbench("report", "--format", "md", "--label", f"{ids[0]}=bc-first", env=env2).stdout.splitlines()[0]
    assert "bc-first" in labelled


def test_estimators_by_hand() -> None:
    scores = np.array([[10.0, 40.0], [20.0, 50.0], [30.0, 60.0], [90.0, 0.0]])  # 4 runs x 2 tasks
    flat = np.sort(scores.ravel())  # 0 10 20 30 40 50 60 90 -> middle half 20 30 40 50
    assert stats.iqm(scores) == pytest.approx(35.0)
    assert stats.mean(scores) == pytest.approx(np.mean(flat))
    assert stats.median(scores) == pytest.approx(np.median([37.5, 37.5]))
    assert stats.optimality_gap(scores, 50.0) == pytest.approx(50 - np.minimum(flat, 50).mean())
    x = np.array([[1.0], [3.0]])
    y = np.array([[2.0], [3.0]])  # pairs: 1<2, 1<3, 3>2, 3=3 -> (1 + 0.5) / 4
    assert stats.probability_of_improvement(x, y) == pytest.approx(0.375)
    prof = stats.performance_profile(scores, np.array([25.0, 45.0]))
    np.testing.assert_allclose(prof, [np.mean([2 / 4, 3 / 4]), np.mean([1 / 4, 2 / 4])])


def test_bootstrap_intervals_are_stratified_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(50, 10, size=(10, 5))
    v, lo, hi = stats.interval(stats.iqm, scores, reps=3000, seed=1)
    assert lo < v < hi and (v, lo, hi) == stats.interval(stats.iqm, scores, reps=3000, seed=1)
    boot = stats.stratified_resamples(scores, 50, np.random.default_rng(2))
    for j in range(5):  # every resampled value of task j comes from task j
        assert np.isin(boot[:, :, j], scores[:, j]).all()
    # the mean's bootstrap interval is close to the normal-theory one
    _, lo, hi = stats.interval(stats.mean, scores, reps=4000, seed=3)
    se = np.sqrt(sum(np.var(scores[:, j], ddof=0) / 10 for j in range(5))) / 5
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)


RLIABLE_SCRIPT = """
import json, sys
import numpy as np
from rliable import library as rly, metrics
scores = {k: np.asarray(v) for k, v in json.loads(sys.stdin.read()).items()}
fns = {"IQM": metrics.aggregate_iqm, "mean": metrics.aggregate_mean, "median": metrics.aggregate_median,
       "optimality gap": lambda x: metrics.aggregate_optimality_gap(x, 100.0)}
agg = lambda x: np.array([f(x) for f in fns.values()])
points, cis = rly.get_interval_estimates(scores, agg, reps=20000)
poi, poi_ci = rly.get_interval_estimates({"a,b": (scores["a"], scores["b"])},
                                         metrics.probability_of_improvement, reps=5000)
print(json.dumps({"points": {k: v.tolist() for k, v in points.items()}, "cis": {k: v.tolist() for k, v in cis.items()},
                  "poi": float(poi["a,b"]), "poi_ci": np.ravel(poi_ci["a,b"]).tolist()}))
"""


def test_estimators_agree_with_rliable() -> None:
    """rliable 1.2 needs pandas < 3: point OFFBENCH_RLIABLE_PYTHON at a Python that has it
    (e.g. a venv with `pip install rliable 'pandas<3'`)."""
    import os

    python = os.environ.get("OFFBENCH_RLIABLE_PYTHON")
    if not python:
        pytest.skip("set OFFBENCH_RLIABLE_PYTHON to a Python with rliable installed")
    rng = np.random.default_rng(7)
    scores = {"a": rng.normal(60, 20, size=(5, 6)), "b": rng.normal(50, 25, size=(5, 6))}
    out = subprocess.run([python, "-c", RLIABLE_SCRIPT], input=json.dumps({k: v.tolist() for k, v in scores.items()}),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    ref = json.loads(out.stdout)
    for algo, x in scores.items():
        for i, (name, fn) in enumerate(stats.AGGREGATES.items()):
            value, lo, hi = stats.interval(fn, x, reps=20000, seed=0)
            assert value == pytest.approx(ref["points"][algo][i], abs=1e-9), (algo, name)
            r_lo, r_hi = ref["cis"][algo][0][i], ref["cis"][algo][1][i]
            assert lo == pytest.approx(r_lo, abs=0.05 * (r_hi - r_lo)) and hi == pytest.approx(r_hi, abs=0.05 * (r_hi - r_lo))
    assert stats.probability_of_improvement(scores["a"], scores["b"]) == pytest.approx(ref["poi"], abs=1e-9)
    _, lo, hi = stats.poi_interval(scores["a"], scores["b"], reps=5000)
    assert lo == pytest.approx(ref["poi_ci"][0], abs=0.03) and hi == pytest.approx(ref["poi_ci"][1], abs=0.03)


def test_domain_averages_ignore_algorithms_that_never_ran_in_the_domain() -> None:
    import pandas as pd

    from offbench.report.tables import grid

    rows = [(d, a, m) for d, a, m in [
        ("hopper-medium", "bc", 50), ("hopper-medium", "dt", 60), ("hopper-medium", "td3bc", 70),
        ("walker2d-medium", "bc", 40), ("walker2d-medium", "dt", 70), ("walker2d-medium", "td3bc", 80),
        ("breakout-1pct", "bc", 100), ("breakout-1pct", "dt", 200), ("pong-1pct", "bc", 80), ("pong-1pct", "dt", 90)]]
    table = pd.DataFrame([{"dataset": d, "column": a, "mean": float(m), "std": 1.0, "ci95": 2.0, "seeds": 3}
                          for d, a, m in rows])
    g = grid(table)
    assert g.rows == ["hopper-medium", "walker2d-medium", "mujoco average (2)",
                      "breakout-1pct", "pong-1pct", "atari average (2)"]
    assert g.mean.loc["atari average (2)", "dt"] == 145.0 and np.isnan(g.mean.loc["atari average (2)", "td3bc"])
    assert g.mean.loc["mujoco average (2)", "td3bc"] == 75.0
    assert g.best("atari average (2)") == {"dt"}


def test_runs_of_two_recipes_are_two_columns_named_in_the_footer(tmp_path: Path) -> None:
    """A results tree mixing recipes for one (dataset, algorithm) is never averaged into one cell."""
    env = {"OFFBENCH_RESULTS": str(tmp_path / "r")}
    base = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "4", "--eval-episodes", "2", "--set", "eval_every=4"]
    assert offbench(*base, env=env).returncode == 0  # Key-to-Door's default: recipe offbench
    p = offbench(*base, "--set", "recipe=paper", "--set", "warmup_steps=1", env=env)
    assert p.returncode == 0, p.stderr
    md = offbench("report", "--format", "md", env=env).stdout
    header = next(line for line in md.splitlines() if line.startswith("| dataset"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert len(columns) == 2 and all(c.startswith("bc@") for c in columns), header
    footer = next(line for line in md.splitlines() if "recipes:" in line)
    named = dict(part.split()[:2] for part in footer.split("recipes: ")[1].split(" (")[0].split(", "))
    assert set(named) == set(columns) and set(named.values()) == {"offbench", "paper"}
    bad = offbench("run", "--algo", "bc", "--env", "keytodoor-1k", "--set", "recipe=bogus", env=env)
    assert bad.returncode == 2 and "recipes: corl, paper, offbench" in bad.stderr.strip().splitlines()[-1]


def test_a_results_tree_from_an_earlier_release_is_still_read() -> None:
    """``tests/data/results-0.1``: a tiny tree written by offbench 0.1.0 (checkpoints left out:
    a report reads summaries, configs and logs only). Its records must keep being read as written."""
    import csv
    import io

    tree = Path(__file__).parent / "data" / "results-0.1"
    p = offbench("report", "--results", str(tree), "--format", "csv")
    assert p.returncode == 0, p.stderr
    rows = {r["algo"]: r for r in csv.DictReader(io.StringIO(p.stdout))}
    assert set(rows) == {"bc", "pbc", "random"}
    pbc = [json.loads(s.read_text())["return_last"] for s in sorted(tree.glob("keytodoor-1k/pbc/*/seed-*/summary.json"))]
    assert float(rows["pbc"]["mean"]) == pytest.approx(100 * np.mean(pbc)) and rows["pbc"]["seeds"] == "2"
    assert rows["pbc"]["steps"] == "300" and rows["random"]["steps"] == "0"


def test_records_under_former_field_names_join_todays_config_and_no_seed_counts_twice(tmp_path: Path) -> None:
    """IQL's ``temperature`` and ``lr`` became ``beta`` and ``actor_lr``/``critic_lr``/``value_lr``:
    a run recorded under the former names has another folder (its config hashes differently) but
    is the same config; the report reads it as such, and where one seed is recorded under both,
    counts it once (the later record) with a warning."""
    from offbench.algos import get_algorithm
    from offbench.data.spec import get_spec
    from offbench.results import RunDir, config_hash, load_runs

    cfg = get_algorithm("iql").Config.for_dataset(get_spec("hopper-medium")).to_dict()
    cfg["hidden"] = list(cfg["hidden"])
    former = {k: v for k, v in cfg.items() if k not in ("beta", "actor_lr", "critic_lr", "value_lr",
                                                         "actor_lr_schedule")}
    former.update(temperature=cfg["beta"], lr=cfg["actor_lr"])
    spec = get_spec("hopper-medium")

    def record(config: dict, seed: int, episode_return: float, mtime: float) -> None:
        chash = config_hash("iql", "hopper-medium", config)
        run = RunDir.of(tmp_path, "hopper-medium", "iql", chash, seed)
        run.root.mkdir(parents=True)
        run.config.write_text(json.dumps({"dataset": "hopper-medium", "algo": "iql", "seed": seed,
                                          "config_hash": chash, "config": config}))
        score = spec.normalize(episode_return)
        run.summary.write_text(json.dumps({
            "dataset": "hopper-medium", "algo": "iql", "config_hash": chash, "seed": seed, "steps": 10,
            "score_last": score, "score_best": score, "return_last": episode_return,
            "return_best": episode_return, "eval_episodes": 1, "score_name": "normalized score"}))
        import os
        os.utime(run.summary, (mtime, mtime))

    record(former, 0, 1000.0, 1.0)
    record(former, 1, 1500.0, 1.0)
    record(cfg, 1, 2000.0, 2.0)  # seed 1 again, later, under today's names
    runs, _ = load_runs(tmp_path)
    assert len(runs) == 3 and runs["config_id"].nunique() == 1
    assert runs["changes"].map(len).tolist() == [0, 0, 0]  # all the default recipe, unchanged
    p = offbench("report", "--json", "--results", str(tmp_path))
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    (row,) = data["rows"]
    assert row["algo"] == "iql" and row["seeds"] == 2  # one column; seed 1 counted once
    assert row["mean"] == pytest.approx((spec.normalize(1000.0) + spec.normalize(2000.0)) / 2)  # its later record
    assert any("1 runs repeat the settings and seed of a later run" in w for w in data["warnings"])
