"""Shared fixtures: every test gets its own cache and results directories."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OFFBENCH_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("OFFBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("OFFBENCH_DATASETS", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def kd1k_arrays() -> dict:
    """The keytodoor-1k arrays, generated once per session."""
    from offbench.data.sources import get_source
    from offbench.data.spec import get_spec

    arrays, _ = get_source("keytodoor")(get_spec("keytodoor-1k"))
    return arrays
