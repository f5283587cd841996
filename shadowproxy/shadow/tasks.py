"""The one place background work is spawned: a bounded pool of strong-referenced tasks.

``TaskPool.spawn`` never waits: when the pool is full it returns False and
the caller counts the drop. ``close`` gives running tasks a grace period,
then cancels and awaits whatever is left, so shutdown never leaks a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

__all__ = ["TaskPool"]

log = structlog.get_logger(__name__)


class TaskPool:
    """At most ``limit`` running tasks, each kept alive by a strong reference."""

    def __init__(self, limit: int, on_change: Callable[[int], None] | None = None) -> None:
        self._limit = limit
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_change = on_change
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def limit(self) -> int:
        """The bound on running tasks."""
        return self._limit

    def spawn(self, coro: Coroutine[Any, Any, None], name: str = "shadow") -> bool:
        """Start ``coro`` unless the pool is full or closed; never blocks."""
        if self._closed or len(self._tasks) >= self._limit:
            coro.close()
            return False
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        self._changed()
        return True

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # A shadow task must never fail silently, nor ever reach the client.
            log.error("background task failed", task=task.get_name(), error=repr(exc))
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(len(self._tasks))

    async def close(self, grace_s: float) -> int:
        """Refuse new work, let running tasks finish for ``grace_s``, cancel the rest.

        Returns how many tasks had to be cancelled.
        """
        self._closed = True
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)
