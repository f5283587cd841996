"""Where comparisons run: small ones inline on the event loop, large ones on one worker thread.

A 50 KB pair compares in about a millisecond, cheaper inline than any
hand-off; a 1 MB pair takes tens of milliseconds, which would stall every
client of the process. Large pairs therefore go to a single dedicated thread:
the interpreter hands the lock back to the event loop every switch interval,
so the loop keeps serving while the comparison runs. Each side keeps its own
``Comparator`` (the engine is not thread-safe), so noise is learned per side.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from shadowproxy.compare import Comparator
from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import Exchange, Verdict

__all__ = ["Comparisons"]


class Comparisons:
    """Compares exchanges without letting a large one stall the event loop."""

    def __init__(self, inline_max_bytes: int) -> None:
        self._inline_max_bytes = inline_max_bytes
        self._inline = Comparator()
        self._large = Comparator()
        # One thread: the work is CPU-bound under one interpreter lock anyway, and
        # callers are already bounded by the shadow pool, so the queue is too.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadowproxy-compare")

    async def compare(self, exchange: Exchange, rules: CompareRules) -> Verdict:
        """The verdict for ``exchange``; large bodies are compared off the loop."""
        largest = max(len(exchange.legacy.body), len(exchange.candidate.body))
        if largest <= self._inline_max_bytes:
            return self._inline.compare(exchange, rules)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._large.compare, exchange, rules)

    def close(self) -> None:
        """Stop the worker thread once queued comparisons are done."""
        self._executor.shutdown(wait=True, cancel_futures=True)
