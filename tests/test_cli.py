"""The command line: listings, info, fetch, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def offbench(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "offbench", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def one_line_error(p: subprocess.CompletedProcess, code: int) -> str:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def test_every_command_has_help_with_an_example() -> None:
    for cmd in ("list", "info", "fetch", "generate", "run", "evaluate", "report", "status", "register", "reproduce"):
        p = offbench(cmd, "--help")
        assert p.returncode == 0 and "Example" in p.stdout and "offbench " + cmd in p.stdout


def test_unknown_dataset_names_the_closest() -> None:
    line = one_line_error(offbench("info", "keytodor-10k"), 2)
    assert "keytodoor-10k" in line
    line = one_line_error(offbench("run", "--algo", "dt", "--env", "keytodoor-100k"), 2)
    assert "keytodoor-10k" in line or "keytodoor-1k" in line


def test_unknown_algorithm_names_the_closest() -> None:
    line = one_line_error(offbench("run", "--algo", "dtt", "--env", "keytodoor-1k"), 2)
    assert "'dtt'" in line and "dt" in line


def test_unknown_set_key_lists_the_valid_keys(isolated: Path) -> None:
    line = one_line_error(offbench("run", "--algo", "bc", "--env", "keytodoor-1k", "--set", "learning_rate=1"), 2)
    assert "learning_rate" in line and "lr" in line and "steps" in line
    assert not (isolated / "results").exists()  # rejected before anything ran


def test_a_former_set_key_still_runs_with_one_warning_line(isolated: Path) -> None:
    p = offbench("run", "--algo", "cql", "--env", "keytodoor-1k", "--steps", "2", "--eval-episodes", "1",
                 "--set", "cql.q_lr=1e-3")
    assert p.returncode == 0, p.stderr
    warned = [line for line in p.stderr.splitlines() if "deprecated" in line]
    assert warned == ["warning: CQLConfig: --set q_lr=1e-3 is deprecated; use --set critic_lr=1e-3"], p.stderr
    assert "FutureWarning" not in p.stderr and "warnings.warn" not in p.stderr
    config = json.loads(next((isolated / "results").glob("*/cql/*/seed-0/config.json")).read_text())["config"]
    assert config["critic_lr"] == 1e-3 and "q_lr" not in config


def test_invalid_numbers_are_usage_errors() -> None:
    assert "seeds" in one_line_error(offbench("run", "--algo", "bc", "--env", "keytodoor-1k", "--seeds", "0"), 2)
    assert "steps" in one_line_error(offbench("run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "-5"), 2)
    assert "lr" in one_line_error(offbench("run", "--algo", "bc", "--env", "keytodoor-1k", "--set", "lr=fast"), 2)


def test_cuda_without_a_gpu_is_a_usage_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "--device auto or cpu" in one_line_error(offbench("run", "--algo", "bc", "--env", "keytodoor-1k", "--device", "cuda"), 2)


def test_unwritable_results_fail_before_training(isolated: Path) -> None:
    blocker = isolated / "file"
    blocker.write_text("not a directory")
    line = one_line_error(offbench("run", "--algo", "bc", "--env", "keytodoor-1k", "--results", str(blocker / "r")), 1)
    assert "cannot write" in line
    assert not (isolated / "cache" / "datasets").exists()  # nothing was fetched or trained


def test_fetch_info_and_list() -> None:
    p = offbench("fetch", "keytodoor-1k")
    assert p.returncode == 0 and "cached" in p.stdout
    assert "already cached" in offbench("fetch", "keytodoor-*").stdout  # globs; the 10k set is built too
    facts = json.loads(offbench("info", "keytodoor-1k", "--json").stdout)
    for key in ("name", "cached", "path", "episodes", "transitions", "return_min", "return_mean", "return_max",
                "observation_space", "action_space", "source", "content_sha256"):
        assert key in facts
    assert facts["cached"] is True and facts["episodes"] == 1000
    listing = offbench("list").stdout
    assert "keytodoor-10k" in listing and "dt" in listing and "pbc" in listing and "random" in listing


def test_info_of_an_uncached_dataset() -> None:
    facts = json.loads(offbench("info", "keytodoor-10k", "--json").stdout)
    assert facts["cached"] is False and facts["episodes"] is None and facts["content_sha256"]


@pytest.mark.parametrize("args", [("report",), ("report", "--format", "md")])
def test_report_without_runs_is_an_error(args: tuple[str, ...]) -> None:
    assert "no finished runs" in one_line_error(offbench(*args), 1)


def test_bad_values_and_flags_anywhere_are_one_line_errors(tmp_path: Path) -> None:
    env = {"OFFBENCH_RESULTS": str(tmp_path / "r")}
    run = ["run", "--algo", "bc", "--env", "keytodoor-1k"]
    assert "expected a JSON list" in one_line_error(offbench(*run, "--set", "hidden=64", env=env), 2)
    assert "lr must be >= 0" in one_line_error(offbench(*run, "--set", "lr=-1", env=env), 2)
    line = one_line_error(offbench(*run, "--steps", "5", "--set", "steps=7", env=env), 2)
    assert "--steps 5 and --set steps=7" in line
    line = one_line_error(offbench("evaluate", "--env", "keytodoor-1k", "--algo", "dt", "--sweep",
                                   "--targets", "0,abc", env=env), 2)
    assert "--targets expects comma-separated numbers" in line
    dt = ["run", "--algo", "dt", "--env", "keytodoor-1k"]
    assert "activation must be one of relu, gelu" in one_line_error(offbench(*dt, "--set", "dt.activation=foo", env=env), 2)
    assert "context must be >= 1" in one_line_error(offbench(*dt, "--set", "dt.context=0", env=env), 2)
    # --debug after the command is accepted (and shows the traceback of the same error)
    p = offbench(*run, "--set", "lr=-1", "--debug", env=env)
    assert p.returncode != 0 and "Traceback" in p.stderr and "lr must be >= 0" in p.stderr
    assert "no such option" not in p.stderr
    assert not (tmp_path / "r").exists()  # nothing ran


def test_inputs_that_would_be_ignored_are_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a dataset")
    line = one_line_error(offbench("fetch", "keytodoor-10k", "--from-file", str(notes)), 2)
    assert "made by offbench itself" in line
    env = {"OFFBENCH_RESULTS": str(tmp_path / "r")}
    p = offbench("run", "--algo", "random", "--env", "keytodoor-1k", "--eval-episodes", "2", env=env)
    assert p.returncode == 0, p.stderr
    line = one_line_error(offbench("report", "--label", "zzzz=DT", env=env), 2)
    assert "no run's config starts with 'zzzz'" in line
    assert offbench("report", "--label", "zzzz=DT", "--format", "md", env=env).returncode == 2


def test_a_mirror_applies_only_to_sources_that_download_from_one() -> None:
    mirror = "http://127.0.0.1:9/offline_rl/"  # nothing listens: the D4RL downloads fail at once
    p = offbench("fetch", "walker2d-expert*", "--mirror", mirror)
    assert p.returncode == 1
    notes = [line for line in p.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: left out 1 datasets whose sources (minari) do not use --mirror; fetch them without it"]
    assert "minari" not in p.stderr.replace(notes[0], "") and "127.0.0.1:9" in p.stderr
    line = one_line_error(offbench("fetch", "walker2d-expert-minari", "--mirror", mirror), 2)
    assert "does not use --mirror" in line
