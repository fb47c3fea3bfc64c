"""A tiny name -> object registry with "did you mean" suggestions.

Every pluggable part of the pipeline (model families, importance criteria,
datasets, optimisers, executors) is looked up through one of these instead of
an if-chain, so adding a variant is one decorated function.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from .errors import EdgepruneError

T = TypeVar("T")


def suggest(name: str, choices: list[str], n: int = 3) -> str:
    """' (did you mean: a, b?)' or '' when nothing is close."""
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    return f" (did you mean: {', '.join(close)}?)" if close else ""


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise EdgepruneError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        names = sorted(self._items)
        return (f"unknown {self.kind} {name!r}{suggest(name, names)}; "
                f"choose one of: {', '.join(names)}")

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
