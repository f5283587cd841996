"""Where comparisons run: small ones inline on the event loop, large ones in a worker process.

A 30 KB pair compares in a fraction of a millisecond, cheaper inline than any
hand-off, and so does any pair whose bodies are equal bytes. A compressed body
is never small: a few KB of gzip may decode to a megabyte. A 50 KB pair that
differs takes about a millisecond, a 1 MB one tens of milliseconds. Those go to
one comparison process per proxy worker (``compare_worker``), with its own
interpreter and its own ``Comparator``, so noise is learned per side, as it is
for the inline comparator.

The process is fed from the event loop itself, through asyncio pipes: a
thread or an executor would need this process's interpreter lock for every
hand-off, and the loop holds it for up to a switch interval at a time (the
loop-lag probe measured single stalls of 0.2 to 0.7 s with a comparison
thread, and an executor's hand-off threads capped comparisons near 200/s).
At most ``MAX_IN_FLIGHT`` requests are on the wire; a large pair beyond that
is dropped, not queued, so waiting exchanges never pile up in memory, and the
caller counts it as ``queue_full``. The process starts with the first large
pair and again after it dies.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from collections import deque
from dataclasses import replace
from types import MappingProxyType

from shadowproxy.compare import Comparator
from shadowproxy.compare.identity import ByIdentity
from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import Exchange, Verdict
from shadowproxy.shadow.compare_worker import (
    HEADER_BYTES,
    RULES_KEPT,
    SharedBodies,
    frame,
    pickled,
)
from shadowproxy.shadow.tasks import TaskPool

__all__ = ["MAX_IN_FLIGHT", "ComparisonWorkerError", "Comparisons"]

MAX_IN_FLIGHT = 8
"""Large pairs on the wire to the worker process at once; more are dropped."""
_EXITED = "the comparison worker process exited"
_IDENTITY = frozenset({"", "identity"})
_STOP_S = 5.0
# The worker gets this process's import path, so it runs this very code
# whether the proxy runs from an installed package or from a source tree.
_BOOT = (
    "import sys; sys.path[:] = {path!r}; "
    "from shadowproxy.shadow.compare_worker import main; sys.exit(main())"
)


class ComparisonWorkerError(Exception):
    """A comparison in the worker process failed, or the process died during it.

    An ``Exception``, not a ``RuntimeError``: mypyc compiles subclasses of only a few
    built-in exceptions (nothing caught it as a ``RuntimeError``)."""


class _Worker:
    """One comparison process; replies arrive in request order."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._waiting: deque[asyncio.Future[Verdict]] = deque()
        self._broken = False
        self._bodies = SharedBodies()
        # A route's rules are the same object for each of its requests: pickled once.
        self._rules: ByIdentity[CompareRules, bytes] = ByIdentity(RULES_KEPT)
        self._reader = TaskPool(1)
        self._reader.spawn(self._read(), name="compare-worker-reader")

    @classmethod
    async def start(cls) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _BOOT.format(path=sys.path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    @property
    def alive(self) -> bool:
        return not self._broken

    @property
    def pid(self) -> int:
        return self._process.pid

    async def compare(self, exchange: Exchange, rules: CompareRules) -> Verdict:
        stdin = self._process.stdin
        assert stdin is not None
        packed, slots = self._bodies.pack(exchange)
        try:
            message = frame((packed, self._rules.get(rules, pickled), slots))
        except Exception:
            # The bodies ``pack`` took are held on this end only: start both afresh.
            self._broken = True
            raise
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            stdin.writelines(message)
            await stdin.drain()
        except ConnectionError:
            self._broken = True
            if future in self._waiting:
                self._waiting.remove(future)
            raise ComparisonWorkerError(_EXITED) from None
        return await future

    async def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(HEADER_BYTES)
                ok, value = pickle.loads(await stdout.readexactly(int.from_bytes(header, "big")))
                future = self._waiting.popleft()
                if future.done():
                    continue
                if ok:
                    # Read-only again, as the engine returns it.
                    future.set_result(
                        replace(value, equivalences=MappingProxyType(value.equivalences))
                    )
                else:
                    future.set_exception(ComparisonWorkerError(value))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._broken = True
            while self._waiting:
                future = self._waiting.popleft()
                if not future.done():
                    future.set_exception(ComparisonWorkerError(_EXITED))

    async def stop(self) -> None:
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), _STOP_S)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        await self._reader.close(_STOP_S)


class Comparisons:
    """Compares exchanges without letting a large one stall the event loop."""

    def __init__(self, inline_max_bytes: int) -> None:
        self._inline_max_bytes = inline_max_bytes
        # Not ``_inline``: mypyc would name the C field ``__inline``, a GCC keyword.
        self._comparator = Comparator()
        self._worker: _Worker | None = None
        self._starting = asyncio.Lock()
        self._in_flight = 0

    def _cheap(self, exchange: Exchange) -> bool:
        """True when comparing inline costs less than the hand-off: no large body to parse."""
        legacy, candidate, secondary = exchange.legacy, exchange.candidate, exchange.secondary
        sides = [legacy, candidate] if secondary is None else [legacy, candidate, secondary]
        if candidate.error is not None:
            return True
        if exchange.stream_kind is not None:
            # Streams skip the fast path: their events are parsed whatever their size.
            return sum(side.body_size for side in sides) <= self._inline_max_bytes
        # Equal bytes take the engine's fast path: nothing is decoded or parsed.
        if all(side.body == legacy.body for side in sides):
            return True
        # A small compressed body may decode to as much as compare.max_decoded_bytes.
        return all(
            len(side.body) <= self._inline_max_bytes
            and (side.header("content-encoding") or "").strip().lower() in _IDENTITY
            for side in sides
        )

    async def _running(self) -> _Worker:
        async with self._starting:
            if self._worker is None or not self._worker.alive:
                if self._worker is not None:
                    await self._worker.stop()
                self._worker = await _Worker.start()
            return self._worker

    async def compare(self, exchange: Exchange, rules: CompareRules) -> Verdict | None:
        """The verdict for ``exchange``, or None when the worker process has no room for it.

        Large bodies that differ are compared in the worker process.
        """
        if self._cheap(exchange):
            return self._comparator.compare(exchange, rules)
        if self._in_flight >= MAX_IN_FLIGHT:
            return None
        self._in_flight += 1
        try:
            worker = await self._running()
            return await worker.compare(exchange, rules)
        finally:
            self._in_flight -= 1

    async def aclose(self) -> None:
        """Stop the worker process once the comparisons sent to it are answered."""
        if self._worker is not None:
            await self._worker.stop()
            self._worker = None
