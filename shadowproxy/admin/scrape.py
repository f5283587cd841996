"""``/metrics`` rendered off the event loop, so a scrape never stalls client traffic.

Rendering walks every series in pure Python: with many routes it took
hundreds of milliseconds, and on the event loop every connection of the
process waited as long. It runs in the loop's default executor instead,
where the loop gets the interpreter lock back at every switch interval
(5 ms). One rendering at a time: a scrape that arrives while one runs gets
its result, so a storm of scrapes costs one rendering, not a thread each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["MetricsRenderer"]

Rendered = tuple[bytes, str]
"""The exposition and its content type."""


class MetricsRenderer:
    """Renders ``render()`` in a thread, shared by the scrapes waiting for it."""

    __slots__ = ("_render", "_running")

    def __init__(self, render: Callable[[], Rendered]) -> None:
        self._render = render
        self._running: asyncio.Future[Rendered] | None = None

    async def render(self) -> Rendered:
        """The exposition, from the rendering under way or a new one."""
        running = self._running
        if running is None:
            loop = asyncio.get_running_loop()
            running = self._running = loop.run_in_executor(None, self._render)
            running.add_done_callback(self._finished)
        # A scraper that goes away stops waiting; the rendering others share goes on.
        return await asyncio.shield(running)

    def _finished(self, future: asyncio.Future[Rendered]) -> None:
        self._running = None
        if not future.cancelled():
            # Every waiting scrape gets the failure; this marks it as seen for asyncio.
            future.exception()
