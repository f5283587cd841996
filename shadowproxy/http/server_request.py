"""One request the lean server took: its head from llhttp, its body as it arrives, its answer.

``ServerRequest`` is the lean server's ``Inbound``: the body is fed by the
connection and read by the hot path with back-pressure (reading pauses at
``BODY_HIGH_WATER`` buffered bytes), and the answer is written with as few
writes as possible: head and body at once, or a head then chunks.
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

from shadowproxy.http.headers import NO_BODY_STATUS
from shadowproxy.http.inbound import Pairs

if TYPE_CHECKING:
    from shadowproxy.http.server_connection import ServerConnection

__all__ = ["BODY_HIGH_WATER", "RequestHead", "ServerRequest"]

BODY_HIGH_WATER: Final = 256 * 1024
"""Request body bytes (or pipelined requests) buffered before reading pauses."""


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

    async def body_chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self._next_chunk(BODY_HIGH_WATER):
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
