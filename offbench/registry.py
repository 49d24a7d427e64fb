"""One registry pattern for named plug-ins (algorithms, dataset sources), with entry points."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from offbench.errors import unknown

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> objects. Built-ins register with :meth:`register`; third-party packages declare
    an entry point in ``group`` whose target is the object (loaded on first lookup)."""

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, T] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("bc")``."""

        def add(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            return obj

        return add

    def _load_plugins(self) -> None:
        if self._plugins_loaded or self.group is None:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()

    def get(self, name: str) -> T:
        """The object named ``name``; an error naming the closest names otherwise."""
        self._load_plugins()
        if name not in self._items:
            raise unknown(self.kind, name, self._items)
        return self._items[name]

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)
