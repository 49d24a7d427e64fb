"""What `report` and `list` write: machine formats that hold only their format, names never cut
when piped, columns that say which config they are, one-line errors for selections that match
nothing, and figures that state what they show."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from offbench.errors import OffbenchError, UsageError
from offbench.report import build, plots
from tests.test_cli import offbench, one_line_error

BOX = set("┃│┏┡━─┌└")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """bc (two configs) and random on keytodoor-1k, 3 seeds, tiny budgets."""
    home = tmp_path_factory.mktemp("outputs")
    env = {"OFFBENCH_HOME": str(home / "cache"), "OFFBENCH_RESULTS": str(home / "results")}
    base = ["run", "--env", "keytodoor-1k", "--seeds", "3", "--steps", "20", "--eval-episodes", "2", "--workers", "2"]
    for extra in (["--algo", "bc,random"], ["--algo", "bc", "--set", "lr=0.01"]):
        p = offbench(*base, *extra, env=env)
        assert p.returncode == 0, p.stderr
    return env


def test_machine_formats_hold_only_their_format(tree: dict) -> None:
    p = offbench("report", "--format", "csv", "--aggregate", "--poi", "random", "random", env=tree)
    assert p.returncode == 2  # the same algorithm twice: refused before anything is printed
    assert p.stdout == ""
    columns = [c for c in json.loads(offbench("report", "--json", env=tree).stdout)["rows"]]
    bc = sorted(r["algo"] for r in columns if r["algo"].startswith("bc@"))
    p = offbench("report", "--format", "csv", "--aggregate", "--poi", bc[0], "random", env=tree)
    assert p.returncode == 0, p.stderr
    rows = list(csv.reader(io.StringIO(p.stdout)))
    assert rows[0] == ["dataset", "algo", "mean", "std", "ci95", "seeds", "steps", "domain"]
    assert len(rows) == 4 and all(len(r) == 8 for r in rows)  # the table only: the rest is on stderr
    assert "IQM" in p.stderr and f"P({bc[0]} > random)" in p.stderr
    md = offbench("report", "--format", "md", "--aggregate", "--compare", "published", env=tree)
    assert md.returncode == 0 and not BOX & set(md.stdout), md.stdout
    assert "## Aggregates over 1 datasets, 3 seeds" in md.stdout and "## Measured vs published" in md.stdout
    section = [line for line in md.stdout.split("## Measured vs published")[1].splitlines()[1:] if line]
    assert section and all(line.startswith("|") for line in section)
    latex = offbench("report", "--format", "latex", "--aggregate", env=tree).stdout
    assert latex.count(r"\begin{tabular}") == 2 and not BOX & set(latex)
    data = json.loads(offbench("report", "--format", "json", "--aggregate", env=tree).stdout)
    assert len(data["rows"]) == 3 and {r["metric"] for r in data["aggregates"]} >= {"IQM", "mean"}
    assert all(len(r["config_folder"]) == 10 for r in data["rows"])


def test_comparison_names_a_budget_other_than_the_recipes(tree: dict) -> None:
    md = offbench("report", "--format", "md", "--compare", "published", "--algo", "random", env=tree).stdout
    assert "| budget |" in md and "the recipe's" in md  # random trains nothing: its budget is the recipe's
    p = offbench("report", "--format", "json", "--compare", "published", env=tree)
    rows = [r for r in json.loads(p.stdout)["comparison"] if r["algo"] == "random"]
    assert rows and rows[0]["budget"] == "the recipe's"


def test_two_configs_are_two_columns_whose_differences_the_footer_names(tree: dict) -> None:
    md = offbench("report", "--format", "md", env=tree).stdout
    header = md.splitlines()[0]
    bc = [c.strip() for c in header.split("|") if c.strip().startswith("bc@")]
    assert len(bc) == 2
    footer = next(line for line in md.splitlines() if "Configs:" in line)
    changed = next(part for part in footer.split("Configs: ")[1].split("; ") if "lr=0.01" in part)
    assert changed.split()[0] in bc  # the column whose command set lr=0.01
    line = one_line_error(offbench("report", "--poi", "bc", "random", env=tree), 2)
    assert "bc ran with several configs here" in line and all(c in line for c in bc)
    assert "--label expects ID=NAME" in one_line_error(offbench("report", "--label", "e2d6", env=tree), 2)


def test_selections_that_match_nothing_say_what_there_is(tree: dict, tmp_path: Path) -> None:
    line = one_line_error(offbench("report", "--algo", "dt", "--env", "keytodoor-1k", env=tree), 2)
    assert "no finished run matches --algo dt and --env keytodoor-1k" in line and "bc, random" in line
    results = Path(tree["OFFBENCH_RESULTS"])
    with pytest.raises(UsageError, match="no finished run matches --env hopper"):
        build(results, envs=["hopper*"])
    with pytest.raises(OffbenchError, match="no finished runs under"):
        build(tmp_path / "empty")


def test_list_never_cuts_names_when_piped_and_has_json() -> None:
    out = offbench("list", "datasets").stdout  # captured: not a terminal
    assert "hopper-medium-replay " in out and "…" not in out
    data = json.loads(offbench("list", "--json").stdout)
    assert "hopper-medium-replay" in {d["name"] for d in data["datasets"]}
    assert "dt" in {a["name"] for a in data["algos"]}


def test_config_values_are_checked_against_their_declared_types(tmp_path: Path) -> None:
    env = {"OFFBENCH_RESULTS": str(tmp_path / "r")}
    run = ["run", "--env", "keytodoor-1k"]
    line = one_line_error(offbench(*run, "--algo", "pbc", "--set", "by=episodes", env=env), 2)
    assert "by must be one of trajectories, timesteps, success; got 'episodes'" in line
    line = one_line_error(offbench(*run, "--algo", "bc", "--set", "hidden=[64,0]", env=env), 2)
    assert "hidden must be a list of integers >= 1" in line
    assert "dropout must be in [0.0, 1.0)" in one_line_error(offbench(*run, "--algo", "bc", "--set", "dropout=1", env=env), 2)
    assert "discount must be in [0.0, 1.0]" in one_line_error(
        offbench(*run, "--algo", "cql", "--set", "discount=1.5", env=env), 2)
    assert not (tmp_path / "r").exists()


def test_learning_curves_clip_bands_to_the_score_range_and_say_what_they_show(monkeypatch, tmp_path: Path) -> None:
    figures: list[plt.Figure] = []
    monkeypatch.setattr(plots, "save", lambda fig, out, name: figures.append(fig) or [])
    # two seeds at 0% and 100%: the t-band (±12.7 std / sqrt 2 = ±635) leaves the 0-100 range
    curves = pd.DataFrame({"dataset": "keytodoor-1k", "column": ["dt", "dt", "bc", "bc"], "seed": [0, 1, 0, 1],
                           "step": 10, "score": [0.0, 100.0, 50.0, 50.0]})
    plots.learning_curves(curves, "success rate (%)", tmp_path, ", 2 evaluation episodes per point and seed")
    fig = figures[0]
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert -5 < low <= 0 and 100 <= high < 105
    bands = [c for c in ax.collections if len(c.get_paths())]
    ys = np.concatenate([p.vertices[:, 1] for c in bands for p in c.get_paths()])
    assert ys.min() >= 0 and ys.max() <= 100
    assert {line.get_marker() for line in ax.get_lines()} == {"o", "s"}  # one shape per series
    text = " ".join(t.get_text() for t in fig.texts)
    assert "Mean over 2 seeds" in text and "95% Student-t interval" in text and "2 evaluation episodes" in text


def test_scores_are_normalized_from_raw_returns_with_the_current_references(tree: dict, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(tree["OFFBENCH_RESULTS"], copy)
    summary_path = sorted(copy.glob("keytodoor-1k/random/*/seed-0/summary.json"))[0]
    summary = json.loads(summary_path.read_text())
    # as if recorded when the references were others: the score no longer matches the return
    summary["score_last"] = summary["score_last"] + 50.0
    summary_path.write_text(json.dumps(summary))
    p = offbench("report", "--json", "--results", str(copy), env=tree)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    random = next(r for r in data["rows"] if r["algo"] == "random")
    returns = [json.loads(s.read_text())["return_last"] for s in sorted(copy.glob("keytodoor-1k/random/*/seed-*/summary.json"))]
    assert random["mean"] == pytest.approx(100 * np.mean(returns))  # Key-to-Door: references 0 and 1
    assert any("normalized with its current reference returns, not those recorded with 1 of its runs" in w
               for w in data["warnings"])


def test_a_seed_recorded_twice_with_the_same_settings_counts_once(tree: dict, tmp_path: Path) -> None:
    import os
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(tree["OFFBENCH_RESULTS"], copy)
    run = next(copy.glob("keytodoor-1k/random/*"))
    old = run.parent / "0000000000"  # as written by a release whose config lacked a field added since
    shutil.copytree(run, old)
    for summary in old.glob("seed-*/summary.json"):
        os.utime(summary, (1, 1))
    p = offbench("report", "--json", "--results", str(copy), env=tree)
    data = json.loads(p.stdout)
    assert next(r for r in data["rows"] if r["algo"] == "random")["seeds"] == 3
    assert any("3 runs repeat the settings and seed of a later run" in w for w in data["warnings"])
