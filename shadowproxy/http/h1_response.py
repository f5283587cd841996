"""One upstream answer as the caller reads it, and the error every upstream failure becomes.

``Response`` hands back the status, the raw header block and the body as it
arrives (``chunks``) or whole (``read``); its connection feeds it and resumes
reading once the caller has taken the buffered bytes below ``LOW_WATER``.
``Framing`` reads what a head says about its body, and refuses the heads the
proxy could not relay faithfully.

Errors::

    UpstreamError(kind: ErrorKind)   the upstream gave no usable answer
      REFUSED      connecting failed (refused or unresolvable)
      TIMEOUT      connect, silence or the whole exchange took too long
      RESET        closed before any byte of the answer
      INCOMPLETE   closed or malformed after the answer began
      OTHER        an answer that is not HTTP (or a head over MAX_HEAD_BYTES)

``shadowproxy.http.upstream`` turns each into an ``Observation`` before the
comparison core sees it.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from shadowproxy.http.headers import length_bits
from shadowproxy.memo import ByValue
from shadowproxy.model import ErrorKind, Headers

if TYPE_CHECKING:
    from shadowproxy.http.h1_connection import Connection

__all__ = [
    "LOW_WATER",
    "REMEMBERED_HEAD_BYTES",
    "Framing",
    "Response",
    "UpstreamError",
    "parse_head",
]

LOW_WATER: Final = 64 * 1024
"""Buffered body bytes below which a paused connection reads again."""
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Bytes RFC 9112 section 4 allows in no reason phrase (HTAB, SP, VCHAR and obs-text are)."""
_REASON_AT: Final = len("HTTP/1.1 200 ")
"""llhttp takes one-digit versions and three-digit status codes only."""
_EMPTY_LINE: Final = (b"\r", b"\n")
_FRAMING_NAMES: Final = length_bits(("content-length", "transfer-encoding"))
"""The lengths of the only field names ``Framing`` reads: other fields are not lower-cased."""
_REMEMBERED_HEADS: Final = 64
"""Heads ``parse_head`` remembers read; when that many are held it starts over."""
REMEMBERED_HEAD_BYTES: Final = 2048
"""Only heads up to this size are remembered: at most 128 KiB held."""
_HEADS: ByValue[bytes, tuple[str, Headers]] = ByValue(_REMEMBERED_HEADS)


def parse_head(raw: bytes, start: int) -> tuple[int, str, Headers]:
    """Where an answer head llhttp accepted ends in ``raw``, its reason phrase and fields.

    The head starts at ``start``, after any empty lines (llhttp skips those
    before a status line), and ends with its blank line; the offset returned
    is just past it. llhttp has already refused anything malformed (bare
    LF, folded lines, whitespace before a colon, control characters), so
    each line splits at its first colon into the field exactly as llhttp's
    ``on_header`` would report it: the value without leading whitespace
    (llhttp keeps trailing whitespace, and so does this). A property test
    holds the two equal. Raises ``UpstreamError`` for a line it cannot read.

    An upstream answers a resource with the same head, byte for byte, until
    its Date ticks over: a head read before is answered from ``_HEADS`` (a
    dictionary lookup instead of a decode, a split and two slices a line).
    """
    while raw[start : start + 1] in _EMPTY_LINE:
        start += 1
    end = raw.find(b"\r\n\r\n", start)
    head = raw[start:end]
    known = _HEADS.get(head)
    if known is not None:
        return end + 4, known[0], known[1]
    lines = head.decode("latin-1").split("\r\n")
    fields: list[tuple[str, str]] = []
    for i in range(1, len(lines)):
        line = lines[i]
        colon = line.find(":")
        if colon < 0 or "\r" in line:
            raise UpstreamError(ErrorKind.OTHER, "a header line that is no field")
        fields.append((line[:colon], line[colon + 1 :].lstrip(" \t")))
    reason, headers = lines[0][_REASON_AT:], tuple(fields)
    if len(head) <= REMEMBERED_HEAD_BYTES:
        _HEADS.keep(head, (reason, headers))
    return end + 4, reason, headers


@dataclass(frozen=True, slots=True)
class Framing:
    """What an answer's head says about the body that follows it."""

    content_length: int | None
    framed: bool
    """A Content-Length or a Transfer-Encoding: False means the body runs to the end."""
    chunked: bool

    @staticmethod
    def of(reason: str, headers: Headers) -> Framing:
        """Read the head; raises ``UpstreamError`` when the proxy could not relay it faithfully.

        A control byte in the reason phrase (llhttp lets them through; relayed,
        one could end the status line early) and a transfer coding other than
        chunked (llhttp removes only the chunked framing: the rest would reach
        the client without the Transfer-Encoding that says what it is).
        """
        # Printable ASCII (nearly every reason phrase) holds no control byte.
        if not (reason.isascii() and reason.isprintable()) and _CONTROL.search(reason):
            raise UpstreamError(ErrorKind.OTHER, "control character in the reason phrase")
        length: int | None = None
        framed = False
        codings: list[str] = []
        for name, value in headers:
            if not (_FRAMING_NAMES >> len(name)) & 1:
                continue
            lowered = name.lower()
            if lowered == "content-length" and value.isdigit():
                length = int(value)
                framed = True
            elif lowered == "transfer-encoding":
                framed = True
                codings.extend(token.strip().lower() for token in value.split(","))
        if codings and codings != ["chunked"]:
            raise UpstreamError(ErrorKind.OTHER, "transfer coding other than chunked")
        return Framing(length, framed, bool(codings))

    def __init__(self, content_length: int | None, framed: bool, chunked: bool) -> None:
        # Written out so mypyc compiles it (shadowproxy.model says why).
        object.__setattr__(self, "content_length", content_length)
        object.__setattr__(self, "framed", framed)
        object.__setattr__(self, "chunked", chunked)


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
        "buffered",
        "content_length",
        "head_size",
        "headers",
        "reading_whole",
        "reason",
        "status",
    )

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.status = 0
        self.reason = ""
        self.headers: Headers = ()
        """Header fields in wire order, repeated ones kept, decoded as Latin-1: the same
        tuple for the same head while ``parse_head`` remembers it."""
        self.head_size = 0
        """The head's bytes, status line to blank line."""
        self.content_length: int | None = None
        """The body's framed length: 0 for a HEAD, 204 or 304 answer, None when
        chunked or delimited by the connection's end."""
        self._chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.reading_whole = False

    @property
    def failed(self) -> bool:
        """True when the body was cut short."""
        return self._error is not None

    @property
    def complete(self) -> bool:
        """True once the whole body has arrived."""
        return self._done

    async def read(self) -> bytes:
        """The whole body (callers bound it by ``content_length`` or ``chunks``)."""
        # Everything will be held anyway: buffering limits would only stall the read.
        self.reading_whole = True
        self._connection.resume()
        while not self._done:
            await self._wait()
        if self._error is not None:
            raise self._failure()
        data = b"".join(self._chunks)
        self._chunks.clear()
        self.buffered = 0
        return data

    def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; raises ``UpstreamError`` when the body is cut."""
        return self

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        # An iterator's method, not an async generator: mypyc compiles no async generators.
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self.buffered -= len(chunk)
                if self.buffered < LOW_WATER:
                    self._connection.resume()
                return chunk
            if self._error is not None:
                raise self._failure()
            if self._done:
                raise StopAsyncIteration
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

    def feed(self, chunk: bytes) -> None:
        """Body bytes from the connection."""
        self._chunks.append(chunk)
        self.buffered += len(chunk)
        self._wake()

    def finish(self, error: UpstreamError | None = None) -> None:
        """The body ended (cut short with ``error``); the connection calls it once."""
        if not self._done:
            self._done = True
            self._error = error
            self._wake()
