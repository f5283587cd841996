"""What was made from an object, kept by the object's identity: a bounded memo.

For values that are the same object request after request (a route's
``CompareRules``), where hashing the value itself would cost more than the
work it saves. Each entry holds its key, so an id is never reused while its
entry is kept. Bounded: when ``limit`` entries are held, the memo starts over.
Pure code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["ByIdentity"]

K = TypeVar("K")
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
