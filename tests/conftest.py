"""Shared fixtures: every test gets its own cache and results directories."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say which CPU kernels this run uses (shown even with -q): AVX-512, AVX2 and SSE4.1 CPUs round
    differently, and the suite must pass on each (``ONEDNN_MAX_CPU_ISA``/``ATEN_CPU_CAPABILITY``)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OFFBENCH_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("OFFBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("OFFBENCH_DATASETS", raising=False)
    return tmp_path


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A minari root of the test's own, and a remote that does not exist (nothing leaves the machine)."""
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    monkeypatch.setenv("MINARI_REMOTE", "hf://offbench-test-nonexistent")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # fail at once rather than retry a network that is not there
    return root


@pytest.fixture(scope="session")
def kd1k_arrays() -> dict:
    """The keytodoor-1k arrays, generated once per session."""
    from offbench.data.sources import get_source
    from offbench.data.spec import get_spec

    arrays, _ = get_source("keytodoor")(get_spec("keytodoor-1k"))
    return arrays


@pytest.fixture
def float64():
    """Build and compute in float64 (offbench's tensors follow torch's default dtype): for tests
    that claim two computations are mathematically equal, so that their tolerance can be derived
    from float64 rounding instead of depending on which float32 kernels a CPU picks."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
