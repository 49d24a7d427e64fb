"""Every module imports on every supported Python: without ``tomllib`` (Python 3.10) TOML is read
with its backport ``tomli``."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import offbench

MODULES = sorted(m.name for m in pkgutil.walk_packages(offbench.__path__, "offbench.") if not m.name.endswith("__main__"))

# tomllib made unimportable, as on Python 3.10; `tomli` (the declared 3.10 dependency) is the same
# parser under its backport's name, so the modules must reach it through that name alone
WITHOUT_TOMLLIB = """
import sys, importlib
import tomllib as parser
sys.modules["tomli"] = parser
sys.modules["tomllib"] = None
for name in sys.argv[1:]:
    importlib.import_module(name)
from offbench.data.spec import all_specs
assert "keytodoor-1k" in all_specs()
print("imported", len(sys.argv) - 1)
"""


def test_every_module_imports_without_tomllib() -> None:
    p = subprocess.run([sys.executable, "-c", WITHOUT_TOMLLIB, *MODULES], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == f"imported {len(MODULES)}"
