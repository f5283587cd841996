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
from collections.abc import AsyncIterable
from typing import Final

from shadowproxy.http.h1_connection import Connection
from shadowproxy.http.h1_response import Response, UpstreamError
from shadowproxy.http.headers import add_fields, has_content_length
from shadowproxy.model import ErrorKind

__all__ = ["IDEMPOTENT_METHODS", "MAX_IDLE_UNLIMITED", "Pool"]

MAX_IDLE_UNLIMITED: Final = 1024
"""Idle connections kept by a pool without a limit; more are closed when released."""
_IDLE_S: Final = 30.0
"""Kept-alive connections unused this long are closed instead of reused."""
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""RFC 9110 section 9.2.2: a request with one of these methods may be sent again."""
# Other methods get an explicit empty body, as aiohttp sends: upstreams may insist on a length.
_BODILESS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


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
        self._limit = limit
        self._taken = 0
        """Slots taken: connections handed out, idle or being opened (with a limit)."""
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        """Requests waiting for a slot, first come first served."""
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
        read_timeout_s: float | None = None,
    ) -> Response:
        """Send a request; returns its answer once the head arrived.

        ``headers`` go out in order, followed by the framing: the given
        ``Content-Length`` for a streamed body, else chunked; the body's
        length for one in memory. ``total_s`` bounds the whole exchange from
        now until the answer's last byte (a timer the connection has anyway,
        cheaper than an ``asyncio.timeout`` around it); ``read_timeout_s``
        replaces the pool's read timeout for this request (a stream may be
        silent for longer). Raises ``UpstreamError``.
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
                    read_timeout_s=read_timeout_s or self._read_timeout_s,
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
        if self._limit > 0:
            if self._taken < self._limit and not self._waiting:
                # A free slot is taken without suspending: no timer to arm and cancel.
                self._taken += 1
            else:
                await self._wait_for_slot(loop)
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

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for a slot ``_free_slot`` hands over; the wait counts against the connect
        timeout, as in aiohttp."""
        waiter = loop.create_future()
        self._waiting.append(waiter)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._free_slot()  # handed over as this wait ended: pass it on
            elif waiter in self._waiting:
                self._waiting.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise UpstreamError(ErrorKind.TIMEOUT, "no free connection") from None
            raise

    def _free_slot(self) -> None:
        """A slot is free: it goes to the first request waiting, else back to the pool."""
        if self._limit <= 0:
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._taken -= 1

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
    # A request head is built twice per request: its fields as pieces, joined once.
    pieces = [method, " ", target, " HTTP/1.1\r\n"]
    add_fields(pieces, headers)
    lines = len(headers) + 2
    chunked = False
    if isinstance(body, bytes):
        if body or method not in _BODILESS:
            pieces.append(f"Content-Length: {len(body)}\r\n")
            lines += 1
    elif not has_content_length(headers):
        chunked = True
        pieces.append("Transfer-Encoding: chunked\r\n")
        lines += 1
    pieces.append("\r\n")
    text = "".join(pieces)
    # Each line ends in the only CR LF it may hold: anything else would split a header.
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ValueError("CR or LF inside a request line or header")
    # Each character stands for one byte the client sent (or the proxy added):
    # Latin-1 gives back exactly those bytes, where UTF-8 would re-encode them.
    return text.encode("latin-1"), chunked
