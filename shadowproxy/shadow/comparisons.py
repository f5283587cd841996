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
import contextlib
import pickle
import subprocess
import sys
from collections import deque
from typing import cast

from shadowproxy.compare import Comparator
from shadowproxy.compare.rules import CompareRules
from shadowproxy.memo import ByIdentity
from shadowproxy.model import Exchange, Verdict
from shadowproxy.shadow.flat import flat_exchange, verdict_of
from shadowproxy.shadow.wire import HEADER_BYTES, RULES_KEPT, SharedBodies, frame, pickled

__all__ = ["MAX_IN_FLIGHT", "ComparisonWorkerError", "Comparisons"]

MAX_IN_FLIGHT = 8
"""Large pairs on the wire to the worker process at once; more are dropped."""
MAX_REPLY_BYTES = 64 * 1024 * 1024
"""A reply announcing more than this is not believed: the process is replaced."""
_EXITED = "the comparison worker process exited"
_IDENTITY = frozenset({"", "identity"})
_ONE_BODY_MIN_BYTES = 4096
"""From this size, equal bodies are compared once: the engine gets them as one object."""
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


class _Replies(asyncio.SubprocessProtocol):
    """The comparison process's end of the pipes: each verdict answers the oldest request.

    Replies are read in the loop's own callback as they arrive, with no task
    waiting on the pipe; when the process exits or a pipe closes, every
    request still waiting fails.
    """

    def __init__(self) -> None:
        self.waiting: deque[asyncio.Future[Verdict]] = deque()
        self.broken = False
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= HEADER_BYTES and not self.broken:
            size = int.from_bytes(buffer[:HEADER_BYTES], "big")
            if size > MAX_REPLY_BYTES:
                self._fail(f"the comparison worker sent a {size}-byte reply")
                return
            end = HEADER_BYTES + size
            if len(buffer) < end:
                return
            reply = bytes(buffer[HEADER_BYTES:end])
            del buffer[:end]
            self._answer(reply)

    def _answer(self, reply: bytes) -> None:
        try:
            ok, value = pickle.loads(reply)
            future = self.waiting.popleft()
        except Exception as exc:
            self._fail(f"the comparison worker sent an unreadable reply: {type(exc).__name__}")
            return
        if future.done():
            return
        if ok:
            future.set_result(verdict_of(value))
        else:
            future.set_exception(ComparisonWorkerError(value))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        # Only the end of stdout ends the replies: closing stdin is how a stop
        # begins, and the process still answers what it was sent; so it does
        # when it exits, its last replies read before stdout's end.
        if fd == 1:
            self._fail(_EXITED)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def _fail(self, reason: str) -> None:
        self.broken = True
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ComparisonWorkerError(reason))


class _Worker:
    """One comparison process; replies arrive in request order."""

    def __init__(self, transport: asyncio.SubprocessTransport, replies: _Replies) -> None:
        self._transport = transport
        self._replies = replies
        stdin = transport.get_pipe_transport(0)
        assert stdin is not None
        # uvloop's pipe transport writes like one but does not derive from WriteTransport.
        self._stdin = cast(asyncio.WriteTransport, stdin)
        self._bodies = SharedBodies()
        # A route's rules are the same object for each of its requests: pickled once.
        self._rules: ByIdentity[CompareRules, bytes] = ByIdentity(RULES_KEPT)

    @classmethod
    async def start(cls) -> _Worker:
        transport, replies = await asyncio.get_running_loop().subprocess_exec(
            _Replies,
            sys.executable,
            "-c",
            _BOOT.format(path=sys.path),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
        )
        return cls(transport, replies)

    @property
    def alive(self) -> bool:
        replies = self._replies
        return not (replies.broken or replies.exited.done() or self._stdin.is_closing())

    @property
    def pid(self) -> int:
        return self._transport.get_pid()

    async def compare(self, exchange: Exchange, rules: CompareRules) -> Verdict:
        replies = self._replies
        if not self.alive:
            raise ComparisonWorkerError(_EXITED)
        packed, slots = self._bodies.pack(exchange)
        try:
            message = frame((flat_exchange(packed), self._rules.get(rules, pickled), slots))
        except Exception:
            # The bodies ``pack`` took are held on this end only: start both afresh.
            replies.broken = True
            raise
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        replies.waiting.append(future)
        # At most MAX_IN_FLIGHT messages wait in the pipe's buffer: no drain needed.
        self._stdin.writelines(message)
        return await future

    async def stop(self) -> None:
        if not self._stdin.is_closing():
            self._stdin.close()
        exited = self._replies.exited
        try:
            await asyncio.wait_for(asyncio.shield(exited), _STOP_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._transport.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), _STOP_S)
        finally:
            self._transport.close()


class Comparisons:
    """Compares exchanges without letting a large one stall the event loop."""

    def __init__(self, inline_max_bytes: int) -> None:
        self._inline_max_bytes = inline_max_bytes
        # Not ``_inline``: mypyc would name the C field ``__inline``, a GCC keyword.
        self._comparator = Comparator()
        self._worker: _Worker | None = None
        self._starting = asyncio.Lock()
        self._in_flight = 0

    def _inline(self, exchange: Exchange) -> Exchange | None:
        """What to compare inline when that costs less than the hand-off, else None.

        Inline: no large body to parse. Equal bodies of some size come back as
        one object, so the engine's own equality check costs no second pass.
        """
        legacy, candidate, secondary = exchange.legacy, exchange.candidate, exchange.secondary
        if candidate.error is not None:
            return exchange
        if exchange.stream_kind is not None:
            # Streams skip the fast path: their events are parsed whatever their size.
            sides = [legacy, candidate] if secondary is None else [legacy, candidate, secondary]
            size = sum(side.body_size for side in sides)
            return exchange if size <= self._inline_max_bytes else None
        body = legacy.body
        # Equal bytes take the engine's fast path: nothing is decoded or parsed.
        if candidate.body == body and (secondary is None or secondary.body == body):
            if len(body) < _ONE_BODY_MIN_BYTES or candidate.body is body:
                return exchange
            return exchange.with_sides(
                legacy,
                candidate.with_body(body),
                None if secondary is None else secondary.with_body(body),
            )
        sides = [legacy, candidate] if secondary is None else [legacy, candidate, secondary]
        # A small compressed body may decode to as much as compare.max_decoded_bytes.
        small = all(
            len(side.body) <= self._inline_max_bytes
            and (side.header("content-encoding") or "").strip().lower() in _IDENTITY
            for side in sides
        )
        return exchange if small else None

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
        inline = self._inline(exchange)
        if inline is not None:
            return self._comparator.compare(inline, rules)
        if self._in_flight >= MAX_IN_FLIGHT:
            return None
        self._in_flight += 1
        try:
            worker = self._worker
            if worker is None or not worker.alive:
                worker = await self._running()
            return await worker.compare(exchange, rules)
        finally:
            self._in_flight -= 1

    async def aclose(self) -> None:
        """Stop the worker process once the comparisons sent to it are answered."""
        if self._worker is not None:
            await self._worker.stop()
            self._worker = None
