"""Bounded memos: what was made from a key, kept by the key's identity or by its value.

``ByIdentity`` is for keys that are the same object request after request (a
route's ``CompareRules``), where hashing the value itself would cost more than
the work it saves; each entry holds its key, so an id is never reused while
its entry is kept. ``ByValue`` is for keys that are equal values arriving as
new objects (an upstream's answer head, the second of a timestamp). Both are
bounded: when ``limit`` entries are held, the memo starts over. Pure code.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ByIdentity", "ByValue"]

K = TypeVar("K")
H = TypeVar("H", bound=Hashable)
V = TypeVar("V")


class ByIdentity(Generic[K, V]):
    """``make(key)`` for each key object, made once while it is kept."""

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: dict[int, tuple[K, V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, make: Callable[[K], V]) -> V:
        """What ``make`` made of ``key``, made now if it is not held."""
        held = self._entries.get(id(key))
        if held is not None and held[0] is key:
            return held[1]
        if len(self._entries) >= self._limit:
            self._entries.clear()
        value = make(key)
        self._entries[id(key)] = (key, value)
        return value


class ByValue(Generic[H, V]):
    """Values kept under equal keys; the caller decides what is worth keeping."""

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: dict[H, V] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: H) -> V | None:
        """The value kept under ``key``, or None."""
        return self._entries.get(key)

    def keep(self, key: H, value: V) -> V:
        """Keep ``value`` under ``key`` (starting over when full); returns it."""
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = value
        return value
