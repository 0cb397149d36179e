"""Registries: a dict plus a decorator. An unknown name fails with "did you mean ..." and the list."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from ladder.errors import LadderError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            hint = difflib.get_close_matches(name, list(self._items), n=1)
            did = f"; did you mean {hint[0]!r}?" if hint else ""
            raise LadderError(f"unknown {self.kind} {name!r}{did} (known: {', '.join(sorted(self._items))})") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
