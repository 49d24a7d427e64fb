"""The README's quick start and CI stay the same commands."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(ci) == 1
    assert f"   {ci[0]}\n" in (ROOT / "README.md").read_text()


def test_readme_main_job_uses_registered_names() -> None:
    from offbench.algos import algorithm_names
    from offbench.data.spec import all_specs

    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if "offbench run --algo" in ln and "pip install" in ln)
    run = line.split("offbench run ")[1].split(" && ")[0].split()
    algos, env = run[run.index("--algo") + 1].split(","), run[run.index("--env") + 1]
    assert set(algos) <= set(algorithm_names()) and env in all_specs()


def test_readme_python_example_runs_verbatim_as_a_script(tmp_path) -> None:
    """The README's Python API block, pasted into a file and run (spawned workers import it again)."""
    import os
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "api.py").write_text(block)
    env = {**os.environ, "OFFBENCH_HOME": str(tmp_path / "home"), "MPLBACKEND": "Agg"}
    env.pop("OFFBENCH_RESULTS", None)
    p = subprocess.run([sys.executable, "api.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "1000 episodes" in p.stdout and "\\begin{tabular}" in p.stdout and "keytodoor-1k" in p.stdout
    assert len(list((tmp_path / "results" / "keytodoor-1k").glob("*/*/seed-*/summary.json"))) == 4


def test_the_readme_table_is_the_one_its_script_recorded() -> None:
    recorded = (ROOT / "benchmarks" / "main_job.md").read_text()
    table = recorded.split("<!-- table -->\n", 1)[1].split("\n<!-- /table -->", 1)[0].strip()
    assert table in (ROOT / "README.md").read_text()


def test_every_measured_figure_in_the_readme_comes_from_a_benchmark_file() -> None:
    """Measured figures (``mean ± spread`` cells, percentages with decimals) are written by scripts
    under ``benchmarks/`` into files there; the README may only repeat them."""
    import re

    readme = (ROOT / "README.md").read_text()
    recorded = "".join(p.read_text() for p in (ROOT / "benchmarks").glob("*.md"))
    figures = re.findall(r"\d+\.\d+ ± \d+\.\d+|\d+\.\d+%", readme)
    assert figures, "the README shows no measured figure: the test would check nothing"
    assert [f for f in figures if f not in recorded] == []
