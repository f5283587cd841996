"""Stream slots: how many shadow streams (SSE copies, WebSocket shadows) one worker runs at once.

A stream's shadow lives for its whole window, holding both sides' events,
so streams have a bound of their own (``shadow.max_streams``) within the
task pool's. Taking a slot never waits: at the bound the stream is not
shadowed and the caller counts ``streams_full``.
"""

from __future__ import annotations

__all__ = ["StreamSlots"]


class StreamSlots:
    """At most ``limit`` shadow streams at once."""

    __slots__ = ("_limit", "_taken")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._taken = 0

    def __len__(self) -> int:
        return self._taken

    def take(self) -> bool:
        """Take a slot; False (take nothing) when all are taken."""
        if self._taken >= self._limit:
            return False
        self._taken += 1
        return True

    def give(self) -> None:
        """Give a slot back."""
        self._taken -= 1
