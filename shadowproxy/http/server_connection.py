"""One client connection of the lean server: finds request heads, feeds bodies, hands over the rest.

Owns the connection's life: the bounds on open connections (the total and
the client address's share: drop and count before reading a byte), the
search for a complete head (linear in the bytes received), acting on what
``RequestHead.take`` decides (take the request, refuse an HTTP/1.1 one
without a Host with 400, or hand the connection, with every byte it has
read, to aiohttp's server behind a ``HandedOver`` watch), its requests
answered one at a time by one task, reading paused while a body waits to be
read, and the client timeouts (head, body, keep-alive) on one timer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Final, cast

import httptools
import structlog

from shadowproxy.http.answer import whole
from shadowproxy.http.inbound import JSON, answer_error, error_body
from shadowproxy.http.server_handover import HandedOver
from shadowproxy.http.server_request import BODY_HIGH_WATER, RequestHead, ServerRequest
from shadowproxy.model import ClientTimeout

if TYPE_CHECKING:
    from shadowproxy.http.server import Server

__all__ = ["ServerConnection"]

log = structlog.get_logger(__name__)

_MAX_HEAD: Final = 64 * 1024


class ServerConnection(asyncio.Protocol):
    """One client connection: finds request heads, feeds bodies, runs one request at a time."""

    __slots__ = (
        "_buffer",
        "_drain_waiter",
        "_eof",
        "_head_started",
        "_idle",
        "_last_active",
        "_last_read",
        "_loop",
        "_paused",
        "_request",
        "_scanned",
        "_task",
        "_transport",
        "_waiter",
        "_write_paused",
        "closed",
        "remote",
        "server",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._scanned = 0
        self._request: ServerRequest | None = None
        self._task: asyncio.Task[None] | None = None
        """The task answering this connection's requests, one after another (``_serve``)."""
        self._waiter: asyncio.Future[None] | None = None
        """What that task awaits between requests; woken by the next one or the end."""
        self._idle: asyncio.TimerHandle | None = None
        """The one timer of the client timeouts (``_check_idle``)."""
        self._loop = asyncio.get_running_loop()
        self._last_active = self._last_read = self._loop.time()
        self._head_started: float | None = self._last_active
        """When the head being awaited began: accept for the first request, its
        first byte for a later one; None while idle between requests."""
        self._paused = False
        self._eof = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.remote = ""

    # -- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        tcp = cast(asyncio.Transport, transport)
        server = self.server
        peer = tcp.get_extra_info("peername")
        remote = str(peer[0]) if isinstance(peer, tuple) else ""
        refusal = server.admit(remote)
        if refusal is not None:
            # At a bound: drop and count, before reading a byte.
            self.closed = True
            tcp.abort()
            server.refused(refusal)
            return
        self._transport = tcp
        self.remote = remote
        server.connections.add(self)
        self._idle = self._loop.call_at(
            self._last_active + server.clients.header_timeout_s, self._check_idle
        )

    def data_received(self, data: bytes) -> None:
        request = self._request
        if request is not None and request.body_pending:
            self._last_read = self._loop.time()
            taken = request.feed(data)
            if taken == len(data):
                if request.buffered >= BODY_HIGH_WATER:
                    self._pause_reading()
                return
            data = data[taken:]
        self._buffer += data
        if request is None:
            if self._head_started is None:
                # The first byte of the next request starts its head's clock.
                self._head_started = self._loop.time()
            self._next_request()
        elif len(self._buffer) >= BODY_HIGH_WATER:
            self._pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        request = self._request
        if request is None:
            return False
        if request.body_pending:
            request.lost()
        # A half-closed client still gets the answer it is waiting for.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._transport is not None:
            # Admitted and not handed over (the hand-over releases its own).
            self.server.release(self.remote)
        self.server.connections.discard(self)
        self._stop_idle()
        if self._request is not None:
            self._request.lost()
        self._wake()
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("client closed the connection"))
            # Retrieved here so a writer that never awaits it leaves no warning.
            waiter.exception()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- writing -----------------------------------------------------------

    def write(self, data: bytes, body: bytes = b"") -> None:
        """Write ``data`` and then ``body``, in one system call (writev) when both are there."""
        if self.closed or self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("client closed the connection")
        if body:
            self._transport.writelines((data, body))
        else:
            self._transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("client closed the connection")
        if self._write_paused:
            waiter = self._drain_waiter
            if waiter is None:
                waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
            await waiter

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task answering a request now, if any (None while the connection is idle)."""
        return self._task if self._request is not None else None

    # -- reading -----------------------------------------------------------

    def resume_reading(self) -> None:
        if self._paused and self._transport is not None and len(self._buffer) < BODY_HIGH_WATER:
            self._paused = False
            self._transport.resume_reading()
            if self._request is not None and self._request.body_pending:
                # Silence while reading was paused was this server's, not the client's.
                self._last_read = self._loop.time()
                self._arm_by(self._last_read + self.server.clients.body_timeout_s)

    def _pause_reading(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def _check_idle(self) -> None:
        """Close a connection past its deadline: head, body (while read) or keep-alive.

        One timer per connection, re-armed when it fires and brought forward
        only when a head or body starts arriving in pieces: cheaper than
        re-scheduling a timer around every request.
        """
        self._idle = None
        clients = self.server.clients
        now = self._loop.time()
        request = self._request
        phase: ClientTimeout | None = None
        if request is None and self._head_started is not None:
            deadline, phase = self._head_started + clients.header_timeout_s, ClientTimeout.HEAD
        elif request is None:
            deadline = self._last_active + clients.keepalive_timeout_s
        elif request.body_pending and not self._paused:
            deadline, phase = self._last_read + clients.body_timeout_s, ClientTimeout.BODY
        else:
            # Being answered: the upstream's timeouts bound that, not the client's.
            deadline = now + clients.keepalive_timeout_s
        if deadline > now:
            self._idle = self._loop.call_at(deadline, self._check_idle)
            return
        if phase is not None:
            self.server.timed_out(phase)
        if phase is ClientTimeout.BODY:
            # Mid-message: the handler sees the client gone.
            self.abort()
        else:
            self.close()

    def _arm_by(self, deadline: float) -> None:
        """Make the timer fire by ``deadline`` (it may be set for later)."""
        timer = self._idle
        if self.closed or self._transport is None:
            return
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._idle = self._loop.call_at(deadline, self._check_idle)

    def _stop_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _next_request(self) -> None:
        """Start the next request whose head is buffered, or hand the connection over."""
        buffer = self._buffer
        # Only the new bytes are searched: a head trickling in byte by byte costs
        # linear time, not quadratic.
        start = max(0, self._scanned - 3)
        end = buffer.find(b"\r\n\r\n", start)
        if end < 0:
            self._scanned = len(buffer)
            # A blank line ending in a bare LF: aiohttp's server decides what that is.
            if len(buffer) > _MAX_HEAD or buffer.find(b"\n\n", start) >= 0:
                self._hand_over()
            elif self._head_started is not None:
                self._arm_by(self._head_started + self.server.clients.header_timeout_s)
            return
        end += 4
        head = RequestHead()
        parser = head.parser = httptools.HttpRequestParser(head)
        try:
            parser.feed_data(memoryview(buffer)[:end])
        except (httptools.HttpParserUpgrade, httptools.HttpParserError):
            self._hand_over()
            return
        finally:
            # The parser refers back to the head: without this, every request
            # would leave a reference cycle for the collector.
            head.parser = None
        request = head.take(self) if head.complete else None
        if request is None:
            self._hand_over()
            return
        del buffer[:end]
        if isinstance(request, str):
            self._refuse(head.method.decode("ascii"), request)
            return
        self._scanned = 0
        if request.body_pending and buffer:
            taken = request.feed(buffer)
            del buffer[:taken]
        self._head_started = None
        if request.body_pending:
            self._last_read = self._loop.time()
            self._arm_by(self._last_read + self.server.clients.body_timeout_s)
        self._request = request
        if self._waiter is not None:
            self._wake()
        elif self._task is None:
            self._task = self._loop.create_task(self._serve())
        # Otherwise the serving task is finishing the previous request: it takes this one next.

    def _refuse(self, method: str, reason: str) -> None:
        """Answer 400 with the proxy's JSON error and close: the request goes nowhere."""
        self.write(
            *whole(
                "1.1",
                method,
                400,
                "Bad Request",
                [("Content-Type", JSON)],
                error_body("proxy", reason),
                keep_alive=False,
            )
        )
        self.close()

    def _hand_over(self) -> None:
        """Let aiohttp's server continue this connection from the current request on."""
        transport = self._transport
        if transport is None or self.closed:
            return
        self._stop_idle()
        server = self.server
        server.connections.discard(self)
        data = bytes(self._buffer)
        self._buffer.clear()
        started = self._head_started
        # The head's clock keeps running; the address keeps its count until the close.
        protocol = HandedOver(
            server.fallback(),
            server,
            self.remote,
            self._loop.time() if started is None else started,
        )
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._paused:
            transport.resume_reading()
        if data:
            protocol.data_received(data)
        self._transport = None
        self._wake()

    async def _serve(self) -> None:
        """Answer the connection's requests one after another, in this one task.

        The next request wakes it: a task per request costs about 8k instructions,
        asyncio's task registry running as Python. It ends with the connection
        (closing, closed or handed over)."""
        try:
            while True:
                request = self._request
                if request is not None:
                    await self._answer(request)
                    continue
                transport = self._transport
                if self.closed or transport is None or transport.is_closing():
                    return
                waiter = self._waiter = self._loop.create_future()
                await waiter
        finally:
            self._task = self._waiter = None

    def _wake(self) -> None:
        """Wake ``_serve`` waiting between requests: a request came, or the connection ended."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _answer(self, request: ServerRequest) -> None:
        try:
            await self.server.handler(request)
        except ConnectionError:
            # The client went away; nobody is left to answer.
            self.abort()
        except Exception:
            log.exception("request failed", method=request.method)
            if request.answered or self.closed:
                self.abort()
            else:
                request.keep_alive = False
                with contextlib.suppress(ConnectionError):
                    answer_error(request, 500, "proxy", "internal")
        finally:
            self._finish(request)

    def _finish(self, request: ServerRequest) -> None:
        self._request = None
        if self.closed:
            return
        # A body nobody read leaves the connection mid-message: it cannot carry another.
        if not request.keep_alive or request.body_pending or request.unread or self.server.closing:
            self.close()
            return
        self._last_active = self._loop.time()
        # Only a keep-alive shorter than the head timeout needs it: a cheap look otherwise.
        self._arm_by(self._last_active + self.server.clients.keepalive_timeout_s)
        self.resume_reading()
        if self._buffer:
            # A pipelined request's first bytes are here already.
            self._head_started = self._last_active
            self._next_request()
        # ``task``, not ``_request``: mypy keeps ``_request`` narrowed to None across the
        # call above, and the compiled build checks it (a pipelined request sets it).
        if self._eof and self.task is None:
            # A half-closed client has had every answer it can still ask for.
            self.close()
