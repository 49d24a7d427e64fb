"""Reading TOML on every supported Python: ``tomllib`` (3.11+) or its backport ``tomli`` (3.10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the `tomli` dependency
    import tomli as tomllib  # type: ignore[no-redef]

TOMLDecodeError = tomllib.TOMLDecodeError


def loads(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def read(path: Path) -> dict[str, Any]:
    """The tables of the TOML file at ``path`` (text that is not UTF-8: a decode error, as TOML's)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise TOMLDecodeError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    return tomllib.loads(text)
