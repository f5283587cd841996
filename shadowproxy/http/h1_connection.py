"""The upstream HTTP/1.1 client: a keep-alive pool of asyncio protocols, parsed by llhttp.

aiohttp's client spends up to twice this one's CPU per request (URL objects,
header multidicts, tracing hooks, a stream reader per response;
``bench/bench_client.py`` measures both), and a proxy makes two upstream
requests per mirrored client request. This client does only what a reverse
proxy needs: send a request head and body exactly as given, parse the answer
with llhttp (httptools), hand back the raw header block and the body bytes
as they arrive, and keep the connection for the next request when HTTP says
it may. It never decompresses, follows redirects, keeps cookies or adds
headers beyond the message framing.

Failures are ``UpstreamError`` with the ``ErrorKind`` recorded as evidence:
refused (or unresolvable) while connecting, timeout, reset before any byte
of the answer, incomplete after it. A request that meets a kept-alive
connection the upstream had just closed is sent again once on a new
connection when its method is idempotent and its body is in memory, as
browsers, aiohttp and nginx do.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterable, AsyncIterator
from typing import Final, cast

import httptools

from shadowproxy.model import ErrorKind, Headers
from shadowproxy.proxy.headers import NO_BODY_STATUS, connection_tokens

__all__ = [
    "IDEMPOTENT_METHODS",
    "MAX_HEAD_BYTES",
    "MAX_IDLE_UNLIMITED",
    "Connection",
    "Pool",
    "Response",
    "UpstreamError",
]

MAX_HEAD_BYTES: Final = 64 * 1024
"""Largest answer head (status line and headers) accepted; a larger one is an error."""
_HIGH_WATER: Final = 256 * 1024
"""Body bytes buffered per connection before reading from the socket pauses."""
_LOW_WATER: Final = 64 * 1024
MAX_IDLE_UNLIMITED: Final = 1024
"""Idle connections kept by a pool without a limit; more are closed when released."""
_IDLE_S: Final = 30.0
"""Kept-alive connections unused this long are closed instead of reused."""
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""RFC 9110 section 9.2.2: a request with one of these methods may be sent again."""
# Other methods get an explicit empty body, as aiohttp sends: upstreams may insist on a length.
_BODILESS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class UpstreamError(Exception):
    """An upstream gave no usable answer; ``kind`` is the reason recorded as evidence."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Response:
    """One answer: status, raw headers and a body read as it arrives.

    Use it as an async context manager: leaving the block gives the
    connection back to its pool when the body was read to its end and HTTP
    allows reuse, and closes it otherwise.
    """

    __slots__ = (
        "_chunks",
        "_connection",
        "_done",
        "_error",
        "_waiter",
        "_whole",
        "buffered",
        "content_length",
        "headers",
        "reason",
        "status",
    )

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.status = 0
        self.reason = ""
        self.headers: Headers = ()
        """Header fields in wire order, repeated ones kept, decoded as Latin-1."""
        self.content_length: int | None = None
        """The body's framed length: 0 for a HEAD, 204 or 304 answer, None when
        chunked or delimited by the connection's end."""
        self._chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._whole = False

    @property
    def complete(self) -> bool:
        """True once the whole body has arrived."""
        return self._done

    async def read(self) -> bytes:
        """The whole body (callers bound it by ``content_length`` or ``chunks``)."""
        # Everything will be held anyway: buffering limits would only stall the read.
        self._whole = True
        self._connection.resume()
        while not self._done:
            await self._wait()
        if self._error is not None:
            raise self._failure()
        data = b"".join(self._chunks)
        self._chunks.clear()
        self.buffered = 0
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; raises ``UpstreamError`` when the body is cut."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self.buffered -= len(chunk)
                if self.buffered < _LOW_WATER:
                    self._connection.resume()
                yield chunk
            elif self._error is not None:
                raise self._failure()
            elif self._done:
                return
            else:
                await self._wait()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        """Give the connection back (body read to the end) or close it (anything else)."""
        self._connection.finished(self)

    def _failure(self) -> UpstreamError:
        # A new exception each time: the stored one's traceback would hold this
        # answer, and through it the connection, in a cycle.
        assert self._error is not None
        return UpstreamError(self._error.kind, self._error.detail)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.buffered += len(chunk)
        self._wake()

    def _finish(self, error: UpstreamError | None = None) -> None:
        if not self._done:
            self._done = True
            self._error = error
            self._wake()


class Connection(asyncio.Protocol):
    """One upstream connection: writes request heads and bodies, parses answers."""

    __slots__ = (
        "_closed",
        "_deadline",
        "_drain_waiter",
        "_head",
        "_head_bytes",
        "_head_ready",
        "_header_list",
        "_in_body",
        "_last_read",
        "_loop",
        "_no_body",
        "_parser",
        "_pool",
        "_reading_paused",
        "_reason",
        "_response",
        "_reusable",
        "_timer",
        "_transport",
        "_until_eof",
        "_write_paused",
        "idle_since",
        "used",
    )

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._response: Response | None = None
        self._head: Response | None = None
        """The response whose head is being parsed (not yet handed to the caller)."""
        self._head_ready: asyncio.Future[Response] | None = None
        self._header_list: list[tuple[str, str]] = []
        self._reason = bytearray()
        self._head_bytes = 0
        self._in_body = False
        self._until_eof = False
        self._no_body = False
        self._reusable = False
        self._closed = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self._deadline: float | None = None
        self.idle_since = 0.0
        self.used = False

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports satisfy asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            # Bytes nobody asked for: the connection's framing can't be trusted.
            self.close()
            return
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            error = cause if isinstance(cause, UpstreamError) else None
            self._fail(error or UpstreamError(ErrorKind.OTHER, "invalid answer"))
        except httptools.HttpParserError as exc:
            kind = ErrorKind.INCOMPLETE if self._in_body else ErrorKind.OTHER
            self._fail(UpstreamError(kind, f"invalid answer: {exc}"))

    def eof_received(self) -> bool:
        if self._until_eof and self._response is not None:
            # A body without a length ends with the connection.
            self._end_message()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._stop_timer()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            # The sender stops at its next step and meets the failure below.
            self._drain_waiter.set_result(None)
        if self._parser is not None:
            # Cut before the head was complete, the request may never have been
            # read (a kept-alive connection closed as we sent): a reset.
            kind = ErrorKind.INCOMPLETE if self._in_body else ErrorKind.RESET
            self._fail(UpstreamError(kind, "connection closed before the answer was complete"))
        # The answer refers back to this connection: without the cycle,
        # reference counting frees both now, not a full collection much later.
        self._response = None
        self._pool.lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # -- llhttp callbacks ---------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self._reason += status
        self._count(len(status))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_body:
            return  # trailers are not relayed
        self._count(len(name) + len(value) + 4)
        self._header_list.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None and self._head is not None
        status = parser.get_status_code()
        if 100 <= status < 200:
            # Interim answers (100 Continue, 103 Early Hints) are not relayed.
            self._header_list = []
            self._reason = bytearray()
            return
        response = self._head
        response.status = status
        response.reason = self._reason.decode("latin-1")
        response.headers = tuple(self._header_list)
        framed = False
        for name, value in self._header_list:
            lowered = name.lower()
            if lowered == "content-length" and value.isdigit():
                response.content_length = int(value)
                framed = True
            elif lowered == "transfer-encoding":
                framed = True
        self._in_body = True
        no_body = self._no_body or status in NO_BODY_STATUS
        if self._no_body:
            # An answer to HEAD without a length looks to llhttp like a body that
            # runs to the connection's end; decide from the version and Connection.
            options = connection_tokens(self._header_list)
            if parser.get_http_version() == "1.0":
                self._reusable = "keep-alive" in options
            else:
                self._reusable = "close" not in options
        else:
            self._reusable = parser.should_keep_alive()
        self._until_eof = not framed and not no_body
        if no_body:
            response.content_length = 0
        self._response, self._head = response, None
        if self._head_ready is not None and not self._head_ready.done():
            self._head_ready.set_result(response)
        if no_body:
            # llhttp can't know the request was HEAD; this parser won't be fed again.
            self._end_message()

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response is None or response._done:
            return  # a body after a HEAD answer's head, sent against the rules
        response._feed(body)
        if response.buffered > _HIGH_WATER and not response._whole and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._response is not None and not self._response._done:
            parser = self._parser
            self._reusable = self._reusable and parser is not None and parser.should_keep_alive()
            self._end_message()

    # -- used by Pool and Response -----------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection can't carry another request."""
        return self._closed or self._transport is None or self._transport.is_closing()

    async def send(
        self,
        method: str,
        head: bytes,
        body: bytes | AsyncIterable[bytes],
        *,
        chunked: bool,
        read_timeout_s: float,
        deadline: float | None = None,
    ) -> Response:
        """Send one request; returns once the answer's head arrived.

        ``deadline`` (loop time) bounds the whole exchange, body included.
        """
        transport = self._transport
        assert transport is not None and self._parser is None
        self.used = True
        self._parser = httptools.HttpResponseParser(self)
        self._head = Response(self)
        self._head_ready = self._loop.create_future()
        self._header_list = []
        self._reason = bytearray()
        self._head_bytes = 0
        self._in_body = self._until_eof = False
        self._no_body = method == "HEAD"
        self._deadline = deadline
        self._start_timer(read_timeout_s)
        if isinstance(body, bytes):
            transport.write(head + body if body else head)
        else:
            transport.write(head)
            await self._send_stream(body, chunked=chunked)
        try:
            return await self._head_ready
        finally:
            # Its result refers back to this connection; a pooled connection
            # kept in that cycle would outlive its close until a full collection.
            self._head_ready = None

    def resume(self) -> None:
        """Read from the socket again once the consumer caught up."""
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._last_read = self._loop.time()
            self._transport.resume_reading()

    def finished(self, response: Response) -> None:
        """The caller is done with ``response``: keep the connection or close it."""
        if response is not self._response:
            return
        if response.complete and response._error is None and self._reusable:
            self._response = None
            self._pool.release(self)
        else:
            self.close()

    def abandon(self) -> None:
        """The caller stopped waiting for the answer: close without failing anyone."""
        if self._head_ready is not None and not self._head_ready.done():
            self._head_ready.cancel()
        self.close()

    # -- internals ------------------------------------------------------------

    async def _send_stream(self, body: AsyncIterable[bytes], *, chunked: bool) -> None:
        transport = self._transport
        assert transport is not None
        async for chunk in body:
            if self._closed:
                break
            if chunk:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            if self._write_paused:
                self._drain_waiter = self._loop.create_future()
                try:
                    await self._drain_waiter
                finally:
                    self._drain_waiter = None
        if chunked and not self._closed:
            transport.write(b"0\r\n\r\n")

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES and not self._in_body:
            raise UpstreamError(ErrorKind.OTHER, f"answer head over {MAX_HEAD_BYTES} bytes")

    def _end_message(self) -> None:
        response = self._response
        self._parser = None
        self._stop_timer()
        if self._until_eof:
            self._reusable = False
        if response is not None:
            response._finish()

    def _fail(self, error: UpstreamError) -> None:
        self._parser = None
        self._stop_timer()
        if self._head_ready is not None and not self._head_ready.done():
            self._head_ready.set_exception(error)
        self._head = None
        if self._response is not None:
            self._response._finish(error)
        self.close()

    def close(self) -> None:
        """Close now, failing any answer still expected."""
        self._reusable = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def _start_timer(self, timeout_s: float) -> None:
        now = self._last_read = self._loop.time()
        first = timeout_s if self._deadline is None else min(timeout_s, self._deadline - now)
        self._timer = self._loop.call_later(first, self._check_idle, timeout_s)

    def _check_idle(self, timeout_s: float) -> None:
        # One timer per request, re-armed only when it fires: cheaper than
        # cancelling and re-scheduling a timer on every read.
        now = self._loop.time()
        left = self._last_read + timeout_s - now
        if self._reading_paused:
            # Not reading because the consumer is slow is no upstream silence.
            left = timeout_s
        if self._deadline is not None:
            if self._deadline <= now:
                self._timer = None
                self._fail(UpstreamError(ErrorKind.TIMEOUT, "deadline passed"))
                return
            left = min(left, self._deadline - now)
        if left > 0:
            self._timer = self._loop.call_later(left, self._check_idle, timeout_s)
            return
        self._timer = None
        self._fail(UpstreamError(ErrorKind.TIMEOUT, f"no data for {timeout_s:g} s"))

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Pool:
    """Connections to one upstream: at most ``limit`` open (0: no limit), idle ones reused.

    ``tls`` is the context for an https upstream, None for plain TCP.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        limit: int,
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self.host = host
        self.port = port
        self._ssl = tls
        self._slots = asyncio.Semaphore(limit) if limit > 0 else None
        self._max_idle = limit if limit > 0 else MAX_IDLE_UNLIMITED
        self._idle: collections.deque[Connection] = collections.deque()
        self._open: set[Connection] = set()
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._closing = False

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] = b"",
        *,
        total_s: float | None = None,
    ) -> Response:
        """Send a request; returns its answer once the head arrived.

        ``headers`` go out in order, followed by the framing: the given
        ``Content-Length`` for a streamed body, else chunked; the body's
        length for one in memory. ``total_s`` bounds the whole exchange from
        now until the answer's last byte (a timer the connection has anyway,
        cheaper than an ``asyncio.timeout`` around it). Raises ``UpstreamError``.
        """
        head, chunked = _head(method, target, headers, body)
        deadline = None if total_s is None else asyncio.get_running_loop().time() + total_s
        # RFC 9112 section 9.3.1: an idempotent request may be sent again once.
        replay = isinstance(body, bytes) and method in IDEMPOTENT_METHODS
        while True:
            connection = await self._acquire()
            reused = connection.used
            try:
                return await connection.send(
                    method,
                    head,
                    body,
                    chunked=chunked,
                    read_timeout_s=self._read_timeout_s,
                    deadline=deadline,
                )
            except UpstreamError as exc:
                # A kept-alive connection the upstream closed as we sent: try a fresh one.
                if not (reused and replay and exc.kind is ErrorKind.RESET):
                    raise
                replay = False
            except BaseException:
                connection.abandon()
                raise

    def release(self, connection: Connection) -> None:
        """Keep ``connection`` for the next request."""
        if self._closing or connection.closed or len(self._idle) >= self._max_idle:
            connection.close()
            return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.append(connection)
        self._free_slot()

    def lost(self, connection: Connection) -> None:
        """``connection`` closed; its slot is free again."""
        if connection in self._open:
            self._open.discard(connection)
            if connection in self._idle:
                self._idle.remove(connection)
            else:
                self._free_slot()

    async def close(self) -> None:
        """Close every connection; answers still being read fail."""
        self._closing = True
        for connection in list(self._open):
            connection.close()
        self._idle.clear()

    async def _acquire(self) -> Connection:
        loop = asyncio.get_running_loop()
        slots = self._slots
        if slots is not None:
            if slots.locked():
                try:
                    # Waiting for a free slot counts against the connect timeout, as in aiohttp.
                    async with asyncio.timeout(self._connect_timeout_s):
                        await slots.acquire()
                except TimeoutError:
                    raise UpstreamError(ErrorKind.TIMEOUT, "no free connection") from None
            else:
                # A free slot is taken without suspending: no timer to arm and cancel.
                await slots.acquire()
        now = loop.time()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < _IDLE_S:
                return connection
            self._open.discard(connection)
            connection.close()
        try:
            return await self._connect(loop)
        except BaseException:
            self._free_slot()
            raise

    def _free_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Connection:
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    lambda: Connection(self), self.host, self.port, ssl=self._ssl
                )
        except TimeoutError:
            raise UpstreamError(ErrorKind.TIMEOUT, "connect timed out") from None
        except OSError as exc:
            detail = f"connect failed: {exc.strerror or type(exc).__name__}"
            raise UpstreamError(ErrorKind.REFUSED, detail) from None
        self._open.add(connection)
        return connection


def _head(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes | AsyncIterable[bytes]
) -> tuple[bytes, bool]:
    """The request head, framing included; and whether the body goes chunked."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    chunked = False
    if isinstance(body, bytes):
        if body or method not in _BODILESS:
            lines.append(f"Content-Length: {len(body)}\r\n")
    elif not any(name.lower() == "content-length" for name, _ in headers):
        chunked = True
        lines.append("Transfer-Encoding: chunked\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # Each line ends in the only CR LF it may hold: anything else would split a header.
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise ValueError("CR or LF inside a request line or header")
    return text.encode("utf-8", "surrogateescape"), chunked
