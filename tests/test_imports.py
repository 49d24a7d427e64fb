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


def import_graph() -> dict[str, set[str]]:
    """offbench module -> the offbench modules it imports (anywhere in the file, deferred imports
    included: they are arrows of the architecture too), read with ``ast``."""
    import ast
    from pathlib import Path

    root = Path(offbench.__file__).parent
    files = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join([*base, node.module] if node.module else base)
                deps.add(module)
                deps |= {f"{module}.{a.name}" for a in node.names}
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def test_no_import_cycles() -> None:
    graph = import_graph()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        seen[module] = 1
        for dep in sorted(graph[module]):
            if seen.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [module, dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in seen:
                visit(dep, [*path, dep])
        seen[module] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [module])


def test_the_data_layer_imports_nothing_above_it() -> None:
    above = ("offbench.algos", "offbench.train", "offbench.launch", "offbench.generate", "offbench.report",
             "offbench.evaluate", "offbench.batches", "offbench.sweep", "offbench.cli", "offbench.results")
    wrong = {m: sorted(d for d in deps if d.startswith(above))
             for m, deps in import_graph().items() if m.startswith("offbench.data")}
    assert not {m: d for m, d in wrong.items() if d}, wrong
