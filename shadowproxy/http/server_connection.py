"""The client-facing HTTP/1.1 server: llhttp-parsed heads, everything unusual handed to aiohttp.

aiohttp's server costs about as much CPU per request as the rest of the hot
path (request and response objects, header multidicts, the router, the
middleware chain); ``docs/performance.md`` has the figures. This server takes
the requests a proxy sees nearly all the time (HTTP/1.0 or 1.1, an
origin-form target, a body framed by Content-Length or none) and answers
them through the same handler, writing each answer with as few writes as
possible.

Any other request is handed over, with the connection, to aiohttp's server:
upgrades, ``Expect``, any ``Transfer-Encoding`` (chunked uploads), targets
that are not a path, more than ``MAX_HEADERS`` header lines, over-long
lines, and anything llhttp or this server's checks refuse. The raw bytes of
that request, and whatever followed it, go to aiohttp's protocol as if it
had read them itself, so hostile and unusual input meets exactly the
checks and answers it met before this server existed, and this server only
ever deals with well-formed requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import http.cookies
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Final, cast

import httptools
import structlog
from multidict import CIMultiDict, MultiMapping

from shadowproxy.proxy.headers import NO_BODY_STATUS
from shadowproxy.proxy.inbound import JSON, Inbound, Pairs, error_body

__all__ = [
    "KEEPALIVE_S",
    "MAX_HEADERS",
    "MAX_LINE",
    "TLS_HANDSHAKE_TIMEOUT_S",
    "Fallback",
    "Handler",
    "Server",
]

log = structlog.get_logger(__name__)

MAX_HEADERS: Final = 100
"""Requests with more header lines go to aiohttp's server, where the proxy's middleware
refuses them with 431."""
MAX_LINE: Final = 8190
"""Longest request line or header line taken here (aiohttp's limit; longer go to it)."""
_MAX_HEAD: Final = 64 * 1024
_HIGH_WATER: Final = 256 * 1024
"""Request body bytes (or pipelined requests) buffered before reading pauses."""
KEEPALIVE_S: Final = 3630.0
"""Idle keep-alive connections close after this, as aiohttp's server does: longer
than the idle timeouts of the load balancers in front, which must close first."""
TLS_HANDSHAKE_TIMEOUT_S: Final = 10.0
"""An HTTPS client that has not finished its handshake by then is disconnected."""
_VERSIONS: Final = frozenset({"1.0", "1.1"})
# Requests carrying these go to aiohttp, which owns upgrades, 100-continue and
# every transfer coding (and their smuggling checks).
_HANDED_OVER: Final = frozenset({"upgrade", "expect", "transfer-encoding"})
# Fields a request may carry once; a repeat goes to aiohttp, which refuses it.
_SINGLE: Final = frozenset({"content-length", "host"})

Handler = Callable[[Inbound], Awaitable[None]]
Fallback = Callable[[], asyncio.Protocol]
"""Makes the aiohttp protocol a handed-over connection continues with."""


class _Head:
    """llhttp's callbacks for one request head."""

    __slots__ = ("complete", "headers", "keep_alive", "method", "parser", "url", "version")

    def __init__(self) -> None:
        self.url = b""
        self.headers: Pairs = []
        self.complete = False
        self.parser: httptools.HttpRequestParser | None = None
        self.method = b""
        self.version = ""
        self.keep_alive = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        # Read now: llhttp resets them once a bodiless message completes.
        parser = self.parser
        assert parser is not None
        self.method = parser.get_method()
        self.version = parser.get_http_version()
        self.keep_alive = parser.should_keep_alive()
        self.complete = True


class _Request:
    """One request taken by this server: its parts, its body as it arrives, its answer."""

    __slots__ = (
        "_bodiless",
        "_body",
        "_buffered",
        "_chunked",
        "_connection",
        "_cookies",
        "_cut",
        "_left",
        "_waiter",
        "answered",
        "content_length",
        "has_body",
        "headers",
        "keep_alive",
        "method",
        "raw_target",
        "remote",
        "scheme",
        "version",
    )

    def __init__(
        self,
        connection: _Connection,
        method: str,
        raw_target: str,
        version: str,
        headers: CIMultiDict[str],
        content_length: int,
        keep_alive: bool,
    ) -> None:
        self._connection = connection
        self.method = method
        self.raw_target = raw_target
        self.version = version
        self.headers: MultiMapping[str] = headers
        self.remote = connection.remote
        self.scheme = connection.server.scheme
        self.content_length: int | None = content_length if content_length else None
        self.has_body = content_length > 0
        self.keep_alive = keep_alive
        self._left = content_length
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._cut = False
        self._waiter: asyncio.Future[None] | None = None
        self._cookies: Mapping[str, str] | None = None
        self._chunked = False
        self._bodiless = False
        self.answered = False
        """The head of an answer has been written."""

    # -- body --------------------------------------------------------------

    @property
    def body_pending(self) -> bool:
        """Body bytes the client has yet to send."""
        return self._left > 0

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """Take what belongs to this body from ``data``; returns how many bytes."""
        taken = min(self._left, len(data))
        if taken:
            self._left -= taken
            self._body.append(bytes(data[:taken]))
            self._buffered += taken
            self._wake()
        return taken

    def lost(self) -> None:
        if self._left:
            self._cut = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _next_chunk(self, limit: int) -> bytes:
        while not self._body:
            if self._cut:
                # A new exception each time: one kept here would pin, through its
                # traceback, the frames that hold this request.
                raise ConnectionResetError("client closed the connection mid-body")
            if not self._left:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._body.popleft()
        if len(chunk) > limit:
            self._body.appendleft(chunk[limit:])
            chunk = chunk[:limit]
        self._buffered -= len(chunk)
        if self._buffered < _HIGH_WATER:
            self._connection.resume_reading()
        return chunk

    async def read(self, limit: int) -> bytes:
        return await self._next_chunk(limit)

    async def body_chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self._next_chunk(_HIGH_WATER):
            yield chunk

    @property
    def cookies(self) -> Mapping[str, str]:
        if self._cookies is None:
            jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
            with contextlib.suppress(http.cookies.CookieError):
                for value in self.headers.getall("Cookie", ()):
                    jar.load(value)
            self._cookies = {name: morsel.value for name, morsel in jar.items()}
        return self._cookies

    # -- answer ------------------------------------------------------------

    def _head(self, status: int, reason: str, headers: Pairs, framing: str) -> bytes:
        connection = self._connection
        if connection.server.closing:
            self.keep_alive = False
        lines = [f"HTTP/{self.version} {status} {reason}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers)
        if framing:
            lines.append(framing)
        if not self.keep_alive:
            lines.append("Connection: close\r\n")
        elif self.version == "1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        self.answered = True
        return "".join(lines).encode("latin-1")

    def answer(self, status: int, reason: str, headers: Pairs, body: bytes) -> None:
        framing = ""
        # RFC 9110 section 8.6: no Content-Length on 1xx or 204; a 304's describes
        # another answer, so it is never invented.
        framed = status >= 200 and status not in NO_BODY_STATUS
        if framed and not any(name.lower() == "content-length" for name, _ in headers):
            framing = f"Content-Length: {len(body)}\r\n"
        head = self._head(status, reason, headers, framing)
        sends_body = framed and self.method != "HEAD"
        self._connection.write(head + body if sends_body else head)

    async def start(self, status: int, reason: str, headers: Pairs) -> None:
        framing = ""
        bodiless = self.method == "HEAD" or status in NO_BODY_STATUS or status < 200
        self._bodiless = bodiless
        if not bodiless and not any(name.lower() == "content-length" for name, _ in headers):
            if self.version == "1.1":
                framing = "Transfer-Encoding: chunked\r\n"
                self._chunked = True
            else:
                # An HTTP/1.0 client reads to the connection's end.
                self.keep_alive = False
        self._connection.write(self._head(status, reason, headers, framing))
        await self._connection.drain()

    async def write(self, chunk: bytes) -> None:
        if not chunk or self._bodiless:
            return
        if self._chunked:
            self._connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            self._connection.write(chunk)
        await self._connection.drain()

    async def end(self) -> None:
        if self._chunked:
            self._connection.write(b"0\r\n\r\n")
            await self._connection.drain()

    def abort(self) -> None:
        self.keep_alive = False
        self._connection.abort()


class _Connection(asyncio.Protocol):
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
        self._request: _Request | None = None
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
                if request._buffered >= _HIGH_WATER:
                    self._pause_reading()
                return
            data = data[taken:]
        self._buffer += data
        if request is None:
            self._next_request()
        elif len(self._buffer) >= _HIGH_WATER:
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
        if self._paused and self._transport is not None and len(self._buffer) < _HIGH_WATER:
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
        head = _Head()
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
        self._scanned = 0
        if request.body_pending and buffer:
            taken = request.feed(buffer)
            del buffer[:taken]
        self._request = request
        self._task = self._loop.create_task(self._answer(request))

    def _take(self, head: _Head) -> _Request | None:
        """The request if this server takes it; None hands it over to aiohttp."""
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
        seen: set[str] = set()
        for name, value in fields:
            lower = name.lower()
            if lower in _HANDED_OVER or len(name) + len(value) + 2 > MAX_LINE:
                return None
            if lower in _SINGLE:
                if lower in seen:
                    return None
                seen.add(lower)
                if lower == "content-length":
                    length = int(value)
            elif lower == "connection" and "upgrade" in value.lower():
                return None
        return _Request(
            self,
            head.method.decode("ascii"),
            url.decode("latin-1"),
            version,
            CIMultiDict(fields),
            length,
            head.keep_alive,
        )

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

    async def _answer(self, request: _Request) -> None:
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
                    request.answer(
                        500,
                        "Internal Server Error",
                        [("Content-Type", JSON)],
                        error_body("proxy", "internal"),
                    )
        finally:
            self._finish(request)

    def _finish(self, request: _Request) -> None:
        self._request = None
        self._task = None
        if self.closed:
            return
        # A body nobody read leaves the connection mid-message: it cannot carry another.
        if not request.keep_alive or request.body_pending or request._body or self.server.closing:
            self.close()
            return
        self._last_active = self._loop.time()
        self.resume_reading()
        if self._buffer:
            self._next_request()
        if self._eof and self._request is None:
            # A half-closed client has had every answer it can still ask for.
            self.close()


class Server:
    """Listens and serves; ``shutdown`` stops accepting and drains in-flight requests.

    At most ``max_connections`` client connections are open at once, counting
    the ``elsewhere()`` ones handed over; a connection beyond that is closed on
    arrival and reported to ``refused``.
    """

    def __init__(
        self,
        handler: Handler,
        fallback: Fallback,
        *,
        max_connections: int,
        elsewhere: Callable[[], int],
        refused: Callable[[], None],
    ) -> None:
        self.handler = handler
        self.fallback = fallback
        self.max_connections = max_connections
        self.elsewhere = elsewhere
        self.refused = refused
        self.connections: set[_Connection] = set()
        self.closing = False
        self.scheme = "http"
        self._server: asyncio.Server | None = None

    async def start(
        self,
        host: str,
        port: int,
        *,
        reuse_port: bool,
        backlog: int,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Listen on ``host:port``; HTTPS with ``tls``."""
        loop = asyncio.get_running_loop()
        self.scheme = "http" if tls is None else "https"
        self._server = await loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            reuse_port=reuse_port,
            backlog=backlog,
            ssl=tls,
            # A connection counts against max_connections only once its
            # handshake is done: a client stalling in it is cut off here.
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if tls is not None else None,
        )

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def shutdown(self, timeout_s: float) -> None:
        """Stop accepting, close idle connections, give in-flight ones ``timeout_s``."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.task is None:
                connection.close()
        busy = {c.task: c for c in self.connections if c.task is not None}
        if not busy:
            return
        _, pending = await asyncio.wait(busy, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        # Only the cut answers are aborted: finished ones are still leaving the
        # socket buffers of connections that are closing.
        for task in pending:
            busy[task].abort()
