"""One request the lean server took: its head from llhttp, its body as it arrives, its answer.

``RequestHead.take`` holds the checks that decide whether the lean server
takes a request, refuses it, or hands it over to aiohttp's server.

``ServerRequest`` is the lean server's ``Inbound``: the body is fed by the
connection and read by the hot path with back-pressure (reading pauses at
``BODY_HIGH_WATER`` buffered bytes), and the answer is written with as few
writes as possible: head and body at once, or a head then chunks (framed by
``shadowproxy.http.answer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookies
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Final

import httptools
from multidict import CIMultiDict, MultiMapping

from shadowproxy.http.answer import LAST_CHUNK, body_chunk, streaming, whole
from shadowproxy.http.inbound import Pairs, origin_target

if TYPE_CHECKING:
    from shadowproxy.http.server_connection import ServerConnection

__all__ = ["BODY_HIGH_WATER", "MAX_HEADERS", "MAX_LINE", "RequestHead", "ServerRequest"]

BODY_HIGH_WATER: Final = 256 * 1024
"""Request body bytes (or pipelined requests) buffered before reading pauses."""
MAX_HEADERS: Final = 100
"""Requests with more header lines go to aiohttp's server, where the proxy's middleware
refuses them with 431."""
MAX_LINE: Final = 8190
"""Longest request line or header line taken here (aiohttp's limit; longer go to it)."""
_VERSIONS: Final = frozenset({"1.0", "1.1"})
# Requests carrying these go to aiohttp, which owns upgrades, 100-continue and
# every transfer coding (and their smuggling checks).
_HANDED_OVER: Final = frozenset({"upgrade", "expect", "transfer-encoding"})
# Fields a request may carry once; a repeat goes to aiohttp, which refuses it.
_SINGLE: Final = frozenset({"content-length", "host"})
# RFC 9112 section 3.2: an HTTP/1.1 request needs a Host with a value.
_NO_HOST: Final = "missing Host"


class RequestHead:
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

    def take(self, connection: ServerConnection) -> ServerRequest | str | None:
        """The request if the lean server takes it; None hands it over to aiohttp.

        A string is the reason to refuse it with 400 there: an HTTP/1.1
        request without a Host, whatever else it carries (aiohttp's parser
        would refuse it too, but not with the proxy's JSON).
        """
        version = self.version
        url = self.url
        fields = self.headers
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
            connection,
            self.method.decode("ascii"),
            origin_target(url.decode("latin-1")),
            version,
            CIMultiDict(fields),
            length,
            self.keep_alive,
        )


class ServerRequest:
    """One request taken by this server: its parts, its body as it arrives, its answer."""

    __slots__ = (
        "_bodiless",
        "_body",
        "_chunked",
        "_connection",
        "_cookies",
        "_cut",
        "_left",
        "_waiter",
        "answered",
        "buffered",
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
        connection: ServerConnection,
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
        self.buffered = 0
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
            self.buffered += taken
            self._wake()
        return taken

    @property
    def unread(self) -> bool:
        """Body bytes received that the handler never read."""
        return bool(self._body)

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
        self.buffered -= len(chunk)
        if self.buffered < BODY_HIGH_WATER:
            self._connection.resume_reading()
        return chunk

    async def read(self, limit: int) -> bytes:
        return await self._next_chunk(limit)

    def body_chunks(self) -> AsyncIterator[bytes]:
        return self

    def __aiter__(self) -> ServerRequest:
        return self

    async def __anext__(self) -> bytes:
        # An iterator's method, not an async generator: mypyc compiles no async generators.
        chunk = await self._next_chunk(BODY_HIGH_WATER)
        if not chunk:
            raise StopAsyncIteration
        return chunk

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

    def _keep_alive(self) -> bool:
        """Whether this answer keeps the connection, decided as its head is written."""
        self.answered = True
        if self._connection.server.closing:
            self.keep_alive = False
        return self.keep_alive

    def answer(self, status: int, reason: str, headers: Pairs, body: bytes) -> None:
        keep_alive = self._keep_alive()
        self._connection.write(
            *whole(self.version, self.method, status, reason, headers, body, keep_alive)
        )

    async def start(self, status: int, reason: str, headers: Pairs) -> None:
        framed = streaming(self.version, self.method, status, reason, headers, self._keep_alive())
        self.keep_alive = framed.keep_alive
        self._bodiless = framed.bodiless
        self._chunked = framed.chunked
        self._connection.write(framed.head)
        await self._connection.drain()

    async def write(self, chunk: bytes) -> None:
        if not chunk or self._bodiless:
            return
        self._connection.write(body_chunk(chunk, self._chunked))
        await self._connection.drain()

    async def end(self) -> None:
        if self._chunked:
            self._connection.write(LAST_CHUNK)
            await self._connection.drain()

    def abort(self) -> None:
        self.keep_alive = False
        self._connection.abort()
