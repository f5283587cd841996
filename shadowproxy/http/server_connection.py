"""One client connection of the lean server: finds request heads, feeds bodies, hands over the rest.

Owns the connection's life: the bound on open connections (drop and count
before reading a byte), the search for a complete head (linear in the bytes
received), the checks that decide whether this server takes a request,
refuses it (an HTTP/1.1 request without a Host: 400) or hands the
connection, with every byte it has read, to aiohttp's server, one
request answered at a time, reading paused while a body waits to be read,
and the keep-alive timer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Final, cast

import httptools
import structlog
from multidict import CIMultiDict

from shadowproxy.http.answer import whole
from shadowproxy.http.inbound import JSON, answer_error, error_body, origin_target
from shadowproxy.http.server_request import BODY_HIGH_WATER, RequestHead, ServerRequest

if TYPE_CHECKING:
    from shadowproxy.http.server import Server

__all__ = ["KEEPALIVE_S", "MAX_HEADERS", "MAX_LINE", "ServerConnection"]

log = structlog.get_logger(__name__)

MAX_HEADERS: Final = 100
"""Requests with more header lines go to aiohttp's server, where the proxy's middleware
refuses them with 431."""
MAX_LINE: Final = 8190
"""Longest request line or header line taken here (aiohttp's limit; longer go to it)."""
_MAX_HEAD: Final = 64 * 1024
KEEPALIVE_S: Final = 3630.0
"""Idle keep-alive connections close after this, as aiohttp's server does: longer
than the idle timeouts of the load balancers in front, which must close first."""
_VERSIONS: Final = frozenset({"1.0", "1.1"})
# Requests carrying these go to aiohttp, which owns upgrades, 100-continue and
# every transfer coding (and their smuggling checks).
_HANDED_OVER: Final = frozenset({"upgrade", "expect", "transfer-encoding"})
# Fields a request may carry once; a repeat goes to aiohttp, which refuses it.
_SINGLE: Final = frozenset({"content-length", "host"})
# RFC 9112 section 3.2: an HTTP/1.1 request needs a Host with a value.
_NO_HOST: Final = "missing Host"


class ServerConnection(asyncio.Protocol):
    """One client connection: finds request heads, feeds bodies, runs one request at a time."""

    __slots__ = (
        "_buffer",
        "_drain_waiter",
        "_eof",
        "_idle",
        "_last_active",
        "_loop",
        "_paused",
        "_request",
        "_scanned",
        "_task",
        "_transport",
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
        self._idle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._last_active = self._loop.time()
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
        if len(server.connections) + server.elsewhere() >= server.max_connections:
            # At the bound: drop and count, before reading a byte.
            self.closed = True
            tcp.abort()
            server.refused()
            return
        self._transport = tcp
        peer = tcp.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, tuple) else ""
        self.server.connections.add(self)
        self._idle = self._loop.call_later(KEEPALIVE_S, self._check_idle)

    def data_received(self, data: bytes) -> None:
        request = self._request
        if request is not None and request.body_pending:
            taken = request.feed(data)
            if taken == len(data):
                if request.buffered >= BODY_HIGH_WATER:
                    self._pause_reading()
                return
            data = data[taken:]
        self._buffer += data
        if request is None:
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
        self.server.connections.discard(self)
        self._stop_idle()
        if self._request is not None:
            self._request.lost()
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

    def write(self, data: bytes) -> None:
        if self.closed or self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("client closed the connection")
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
        """The request being answered, if any."""
        return self._task

    # -- reading -----------------------------------------------------------

    def resume_reading(self) -> None:
        if self._paused and self._transport is not None and len(self._buffer) < BODY_HIGH_WATER:
            self._paused = False
            self._transport.resume_reading()

    def _pause_reading(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def _check_idle(self) -> None:
        # One timer per connection, re-armed only when it fires: cheaper than
        # cancelling and re-scheduling a timer around every request.
        left = self._last_active + KEEPALIVE_S - self._loop.time()
        if self._request is not None or left > 0:
            self._idle = self._loop.call_later(max(left, 1.0), self._check_idle)
            return
        self._idle = None
        self.close()

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
        request = self._take(head) if head.complete else None
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
        self._request = request
        self._task = self._loop.create_task(self._answer(request))

    def _take(self, head: RequestHead) -> ServerRequest | str | None:
        """The request if this server takes it; None hands it over to aiohttp.

        A string is the reason to refuse it with 400 here: an HTTP/1.1
        request without a Host, whatever else it carries (aiohttp's parser
        would refuse it too, but not with the proxy's JSON).
        """
        version = head.version
        url = head.url
        fields = head.headers
        if (
            version not in _VERSIONS
            or not url.startswith(b"/")
            or len(url) > MAX_LINE
            or len(fields) > MAX_HEADERS
        ):
            return None
        length = 0
        host = ""
        handed = False
        seen: set[str] = set()
        for name, value in fields:
            lower = name.lower()
            if lower in _HANDED_OVER or len(name) + len(value) + 2 > MAX_LINE:
                handed = True
            elif lower in _SINGLE:
                if lower in seen:
                    return None
                seen.add(lower)
                if lower == "content-length":
                    length = int(value)
                else:
                    host = value
            elif lower == "connection" and "upgrade" in value.lower():
                handed = True
        if not host and version == "1.1":
            return _NO_HOST
        if handed:
            return None
        return ServerRequest(
            self,
            head.method.decode("ascii"),
            origin_target(url.decode("latin-1")),
            version,
            CIMultiDict(fields),
            length,
            head.keep_alive,
        )

    def _refuse(self, method: str, reason: str) -> None:
        """Answer 400 with the proxy's JSON error and close: the request goes nowhere."""
        self.write(
            whole(
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
        self.server.connections.discard(self)
        data = bytes(self._buffer)
        self._buffer.clear()
        protocol = self.server.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._paused:
            transport.resume_reading()
        if data:
            protocol.data_received(data)
        self._transport = None

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
        self._task = None
        if self.closed:
            return
        # A body nobody read leaves the connection mid-message: it cannot carry another.
        if not request.keep_alive or request.body_pending or request.unread or self.server.closing:
            self.close()
            return
        self._last_active = self._loop.time()
        self.resume_reading()
        if self._buffer:
            self._next_request()
        if self._eof and self._request is None:
            # A half-closed client has had every answer it can still ask for.
            self.close()
