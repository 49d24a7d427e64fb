"""User-facing errors: one line each, with an exit code and a hint of what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OffbenchError(Exception):
    """An error the user can act on; the CLI prints it as one line and exits with ``exit_code``."""

    exit_code = 1


class UsageError(OffbenchError):
    """Bad input on the command line (unknown names, invalid values): exit code 2."""

    exit_code = 2


class OffbenchDeprecation(FutureWarning):
    """A former name or option that still works, shown to users as one ``warning:`` line."""


class Interrupted(OffbenchError):
    """The user stopped a command (Ctrl-C or SIGTERM): exit code 130, as shells expect."""

    exit_code = 130


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The valid names closest to ``name``, best first (substring matches count as close)."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    for c in choices:
        if len(close) >= n:
            break
        if c not in close and (name in c or c in name):
            close.append(c)
    return close or choices[:n]


def unknown(kind: str, name: str, choices: Iterable[str]) -> UsageError:
    """A "did you mean" error for an unknown ``kind`` (dataset, algorithm, ...)."""
    hint = ", ".join(closest(name, choices))
    shown = name if name.isprintable() else repr(name)[1:-1]  # a newline in a name must not break the line
    return UsageError(f"unknown {kind} '{shown}'; closest: {hint} (see 'offbench list')")
