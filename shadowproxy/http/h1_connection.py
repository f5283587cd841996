"""One upstream connection: writes a request head and body, parses the answer with llhttp.

An asyncio protocol per connection: the llhttp callbacks build the answer's
``Response``, interim (1xx) answers are skipped, trailers dropped, a head over
``MAX_HEAD_BYTES`` refused, and so are answers the proxy could not relay
faithfully: a 101 (nothing asked for an upgrade), a control byte in the
reason phrase, a transfer coding other than chunked. Reading pauses once
``HIGH_WATER`` body bytes wait for the caller. One timer per connection
(``h1_timer``), kept from one request to the next, enforces the read timeout
(silence) and the exchange's deadline. A connection goes back
to its pool only when its answer was read to the end and HTTP allows reuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Final, cast

import httptools

from shadowproxy.http.h1_response import Framing, Response, UpstreamError, parse_head
from shadowproxy.http.h1_timer import ConnectionTimer
from shadowproxy.http.headers import NO_BODY_STATUS, connection_tokens
from shadowproxy.model import ErrorKind

if TYPE_CHECKING:
    from shadowproxy.http.h1 import Pool

__all__ = ["FEED_BUDGET", "HIGH_WATER", "MAX_HEAD_BYTES", "Connection"]

MAX_HEAD_BYTES: Final = 64 * 1024
"""Largest answer head (status line and headers) accepted; a larger one is an error."""
HIGH_WATER: Final = 256 * 1024
"""Body bytes buffered per connection before reading from the socket pauses."""
FEED_BUDGET: Final = 16 * 1024
"""Bytes of a head or a chunked body fed to llhttp per event-loop turn: an answer in
one-byte chunks costs a callback per six bytes, and a whole 256 KiB read fed at once
held the loop for tens of milliseconds. A body framed by Content-Length is one callback
per read, so it is fed whole."""
_SWITCHING_PROTOCOLS: Final = 101


class Connection(asyncio.Protocol):
    """One upstream connection: writes request heads and bodies, parses answers."""

    __slots__ = (
        "_backlog",
        "_chunked",
        "_closed",
        "_drain_waiter",
        "_head",
        "_head_raw",
        "_head_ready",
        "_head_start",
        "_in_body",
        "_loop",
        "_no_body",
        "_parser",
        "_parts",
        "_pool",
        "_reading_paused",
        "_response",
        "_reusable",
        "_spare",
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
        """The parser of the answer in flight; None between answers."""
        self._spare: httptools.HttpResponseParser | None = None
        """A parser that completed an answer llhttp framed, ready for the next one (creating
        one per request costs about 3k instructions)."""
        self._response: Response | None = None
        self._head: Response | None = None
        """The response whose head is being parsed (not yet handed to the caller)."""
        self._head_ready: asyncio.Future[Response] | None = None
        self._head_raw = b""
        """The bytes fed to llhttp while the answer's head is incomplete."""
        self._head_start = 0
        """Where the answer's head starts in them (after interim 1xx heads)."""
        self._parts: list[bytes] = []
        """Body chunks llhttp gave during the current read, handed over in one piece."""
        self._in_body = False
        self._chunked = False
        self._backlog: memoryview | None = None
        """Bytes read but not yet fed to llhttp (``FEED_BUDGET`` per loop turn)."""
        self._until_eof = False
        self._no_body = False
        self._reusable = False
        self._closed = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._timer = ConnectionTimer(self._loop)
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
        self._timer.last_read = self._loop.time()
        if len(data) <= FEED_BUDGET or (self._in_body and not self._chunked):
            self._feed(data)
            return
        # The head alone first when it ends within the budget: a body framed by
        # Content-Length then reaches llhttp, and the caller, in one piece, where a
        # cut at the budget would make two copies of it and a third to join them.
        end = -1 if self._in_body else data.find(b"\r\n\r\n", 0, FEED_BUDGET)
        self._feed_slices(memoryview(data), FEED_BUDGET if end < 0 else end + 4)

    def _feed_slices(self, data: memoryview, cut: int = FEED_BUDGET) -> None:
        """Feed a head or a chunked body at most ``FEED_BUDGET`` bytes (``cut``) per loop turn.

        llhttp calls back per header or chunk, so this bounds the work of one
        turn; the socket is paused while the rest waits for the next one.
        """
        self._feed(data[:cut])
        rest = data[cut:]
        if rest and self._parser is None:
            # Bytes after the answer nobody asked for, as in data_received.
            self.close()
        elif rest and self._in_body and not self._chunked:
            self._feed(rest)
        elif rest:
            if self._backlog is None:
                assert self._transport is not None
                self._transport.pause_reading()
            self._backlog = rest
            self._loop.call_soon(self._feed_backlog)
            return
        if self._backlog is not None:
            self._backlog = None
            if not self._reading_paused and not self.closed:
                assert self._transport is not None
                self._transport.resume_reading()

    def _feed_backlog(self) -> None:
        if self._backlog is not None:
            self._feed_slices(self._backlog)

    def _feed(self, data: bytes | memoryview) -> None:
        if self._parser is None:
            return
        try:
            if not self._in_body:
                # llhttp checks the head; its bytes are read in one go once it is whole.
                raw = self._head_raw
                self._head_raw = raw + data if raw else bytes(data)
            self._parser.feed_data(data)
            if not self._in_body and len(self._head_raw) - self._head_start > MAX_HEAD_BYTES:
                raise UpstreamError(ErrorKind.OTHER, f"answer head over {MAX_HEAD_BYTES} bytes")
            self._deliver()
        except UpstreamError as refused:
            self._fail(refused)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            error = cause if isinstance(cause, UpstreamError) else None
            self._fail(error or UpstreamError(ErrorKind.OTHER, "invalid answer"))
        except httptools.HttpParserError as exc:
            kind = ErrorKind.INCOMPLETE if self._in_body else ErrorKind.OTHER
            self._fail(UpstreamError(kind, f"invalid answer: {exc}"))
        except httptools.HttpParserUpgrade:
            # The proxy never asks for an upgrade (WebSockets go through their own tunnel).
            self._fail(UpstreamError(ErrorKind.OTHER, "unrequested protocol switch"))

    def eof_received(self) -> bool:
        if self._until_eof and self._response is not None:
            # A body without a length ends with the connection.
            self._end_message()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._timer.stop()
        self._spare = None  # it refers back to this connection
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
    # No on_status or on_header: llhttp checks every line of the head without
    # a call into Python per field, and ``parse_head`` reads the fields at once.

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None and self._head is not None
        start = self._head_start
        end, reason, fields = parse_head(self._head_raw, start)
        if end - start > MAX_HEAD_BYTES:
            raise UpstreamError(ErrorKind.OTHER, f"answer head over {MAX_HEAD_BYTES} bytes")
        status = parser.get_status_code()
        if status == _SWITCHING_PROTOCOLS:
            raise UpstreamError(ErrorKind.OTHER, "101 Switching Protocols to a plain request")
        if 100 <= status < 200:
            # Interim answers (100 Continue, 103 Early Hints) are not relayed.
            self._head_start = end
            return
        self._head_raw = b""
        framing = Framing.of(reason, fields)
        response = self._head
        response.status = status
        response.reason = reason
        response.headers = fields
        response.head_size = end - start
        response.content_length = framing.content_length
        self._chunked = framing.chunked
        self._in_body = True
        no_body = self._no_body or status in NO_BODY_STATUS
        if self._no_body:
            # An answer to HEAD without a length looks to llhttp like a body that
            # runs to the connection's end; decide from the version and Connection.
            options = connection_tokens(fields)
            if parser.get_http_version() == "1.0":
                self._reusable = "keep-alive" in options
            else:
                self._reusable = "close" not in options
        else:
            self._reusable = parser.should_keep_alive()
        self._until_eof = not framing.framed and not no_body
        if no_body:
            response.content_length = 0
        self._response, self._head = response, None
        if self._head_ready is not None and not self._head_ready.done():
            self._head_ready.set_result(response)
        if no_body:
            # llhttp can't know the request was HEAD; this parser won't be fed again.
            self._end_message()

    def on_body(self, body: bytes) -> None:
        # One call per chunk of a chunked answer: a tiny-chunk answer makes a
        # quarter of a million of them per 256 KiB read, so each is an append
        # and the chunks reach the caller in one piece per read (``_deliver``).
        self._parts.append(body)

    def on_message_complete(self) -> None:
        if self._response is not None and not self._response.complete:
            parser = self._parser
            self._reusable = self._reusable and parser is not None and parser.should_keep_alive()
            if self._reusable and not self._until_eof:
                self._spare = parser
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
        self._parser = self._spare or httptools.HttpResponseParser(self)
        self._spare = None
        self._head = Response(self)
        self._head_ready = self._loop.create_future()
        self._head_raw = b""
        self._head_start = 0
        self._parts = []
        self._in_body = self._until_eof = self._chunked = False
        self._no_body = method == "HEAD"
        self._timer.start(read_timeout_s, deadline, self._check_idle)
        if isinstance(body, bytes):
            if body:
                # One system call (writev) without copying the body behind the head.
                transport.writelines((head, body))
            else:
                transport.write(head)
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
            self._timer.last_read = self._loop.time()
            if self._backlog is None:
                # Otherwise the backlog's last slice resumes: bytes stay in order.
                self._transport.resume_reading()

    def finished(self, response: Response) -> None:
        """The caller is done with ``response``: keep the connection or close it."""
        if response is not self._response:
            return
        if response.complete and not response.failed and self._reusable:
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

    def _deliver(self) -> None:
        """Hand the body chunks of the last read to the answer, joined, and pause if it is full."""
        parts = self._parts
        if not parts:
            return
        self._parts = []
        response = self._response
        if response is None or response.complete:
            return  # a body after a HEAD answer's head, sent against the rules
        response.feed(parts[0] if len(parts) == 1 else b"".join(parts))
        if (
            response.buffered > HIGH_WATER
            and not response.reading_whole
            and not self._reading_paused
        ):
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def _end_message(self) -> None:
        self._deliver()
        response = self._response
        self._parser = None
        if self._until_eof:
            self._reusable = False
        if response is not None:
            response.finish()

    def _fail(self, error: UpstreamError) -> None:
        self._deliver()
        self._parser = None
        if self._head_ready is not None and not self._head_ready.done():
            self._head_ready.set_exception(error)
        self._head = None
        if self._response is not None:
            self._response.finish(error)
        self.close()

    def close(self) -> None:
        """Close now, failing any answer still expected."""
        self._reusable = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def _check_idle(self) -> None:
        if self._parser is None:
            self._timer.fired()  # nothing in flight since the request it was armed for
            return
        error = self._timer.check(self._reading_paused, self._check_idle)
        if error is not None:
            self._fail(error)
