"""Where comparisons run: small ones inline on the event loop, large ones in a worker process.

A 50 KB pair compares in about half a millisecond, cheaper inline than any
hand-off. A 1 MB pair takes tens of milliseconds. On a thread it would still
hold the interpreter lock through every C-level parse, and the event loop,
which gives the lock up at each system call, would wait to get it back every
time: the loop-lag probe measured single stalls of 0.2 to 0.7 s that way (see
docs/performance.md). Large pairs therefore go to one spawned worker process
with its own interpreter and its own ``Comparator``, so noise is learned per
side, as it is for the inline comparator. The executor's own threads pickle
the exchange and unpickle the verdict; the parse and the walk never touch this
process's interpreter lock. The process starts with the first large pair and
is started again if it dies.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from types import MappingProxyType

from shadowproxy.compare import Comparator
from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import Exchange, Verdict

__all__ = ["ComparisonWorkerLostError", "Comparisons"]

_PARENT_POLL_S = 1.0
_WORKER_COMPARATOR = Comparator()
"""The worker process's comparator (this module is imported afresh there)."""


class ComparisonWorkerLostError(RuntimeError):
    """The comparison process died mid-comparison; the next large pair starts a new one."""


def _worker_init(parent: int) -> None:
    # The parent owns the signals: Ctrl-C in a terminal reaches the whole process
    # group, SIGHUP means reload, SIGTERM means drain. The worker ends when the
    # parent shuts the executor down, or soon after the parent dies.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    threading.Thread(
        target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True
    ).start()


def _exit_with_parent(parent: int) -> None:
    # A worker killed with SIGKILL cannot stop its comparison process, and the
    # process would otherwise wait on its call queue forever.
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(0)


def _compare_in_worker(exchange: Exchange, rules: CompareRules) -> Verdict:
    verdict = _WORKER_COMPARATOR.compare(exchange, rules)
    # A read-only mapping view does not pickle; the parent makes it read-only again.
    return replace(verdict, equivalences=dict(verdict.equivalences))


class Comparisons:
    """Compares exchanges without letting a large one stall the event loop."""

    def __init__(self, inline_max_bytes: int) -> None:
        self._inline_max_bytes = inline_max_bytes
        self._inline = Comparator()
        self._executor: ProcessPoolExecutor | None = None

    def _worker(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # One process: callers are already bounded by the shadow pool, so the
            # queue is too. Spawned, never forked: the parent runs threads.
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
        return self._executor

    async def compare(self, exchange: Exchange, rules: CompareRules) -> Verdict:
        """The verdict for ``exchange``; large bodies are compared in the worker process."""
        largest = max(len(exchange.legacy.body), len(exchange.candidate.body))
        if largest <= self._inline_max_bytes:
            return self._inline.compare(exchange, rules)
        executor = self._worker()
        loop = asyncio.get_running_loop()
        try:
            verdict = await loop.run_in_executor(executor, _compare_in_worker, exchange, rules)
        except BrokenProcessPool:
            if self._executor is executor:
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            raise ComparisonWorkerLostError("the comparison worker process exited") from None
        return replace(verdict, equivalences=MappingProxyType(verdict.equivalences))

    def close(self) -> None:
        """Stop the worker process once queued comparisons are done."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
