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
