"""aiohttp's server for the connections the lean server hands over, and its quiet logging.

The lean server (``shadowproxy.http.server``) takes the requests a proxy sees
nearly all the time and hands the connection, with the bytes it has read, to
the application built here for anything else: upgrades (``websocket``),
``Expect``, chunked uploads, unusual targets and anything malformed. A
middleware refuses what must never reach an upstream, ``AiohttpInbound``
adapts aiohttp's request to the hot path's ``Inbound``, and every other
request goes through the same ``Forwarder.handle`` as the lean server's.

aiohttp logs every request it cannot parse at error level with a traceback
that quotes part of the offending line, which a client can cause at will and
which may carry anything it sent; ``install_log_filter`` turns those records
into one warning line naming only the kind of error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, MultiMapping

from shadowproxy.http.answer import LAST_CHUNK, Streaming, body_chunk, streaming, whole
from shadowproxy.http.forward import Forwarder
from shadowproxy.http.inbound import JSON, Pairs, error_body, origin_target
from shadowproxy.http.server_handover import HandedOver
from shadowproxy.http.server_request import MAX_HEADERS, MAX_LINE
from shadowproxy.http.websocket import Refusal, WebSocketTunnel, is_upgrade
from shadowproxy.model import ClientTimeout
from shadowproxy.settings import ClientSettings

__all__ = [
    "AiohttpInbound",
    "MalformedRequestFilter",
    "WrittenAnswer",
    "handover_app",
    "install_log_filter",
    "json_error",
]

_HTTP_VERSIONS = frozenset({HttpVersion10, HttpVersion11})
_SERVER_LOGGER = "aiohttp.server"


def json_error(status: int, upstream: str, reason: str) -> web.Response:
    """``error_body`` as an aiohttp answer."""
    return web.Response(
        body=error_body(upstream, reason), status=status, headers={"Content-Type": JSON}
    )


def _refuse(status: int, reason: str) -> web.Response:
    """An answer to a malformed request; the connection closes after it."""
    response = json_error(status, "proxy", reason)
    response.force_close()
    return response


def _codings(request: web.Request) -> list[str]:
    """The request's transfer codings, in order, lower case."""
    values = request.headers.getall("Transfer-Encoding", ())
    return [token.strip().lower() for value in values for token in value.split(",")]


@web.middleware
async def _origin_form_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """CONNECT, non-origin-form targets, unknown HTTP versions, HTTP/1.1 without a Host
    and transfer codings other than chunked never reach an upstream."""
    if request.version not in _HTTP_VERSIONS:
        # aiohttp's pure-Python parser accepts any HTTP/x.y; an upstream might read it otherwise.
        return _refuse(400, "unsupported HTTP version")
    # aiohttp's parsers allow 128 header lines and count differently from each other.
    if len(request.raw_headers) > MAX_HEADERS:
        return _refuse(431, "too many request headers")
    if request.version == HttpVersion11 and not request.headers.get("Host"):
        # RFC 9112 section 3.2; the lean server hands such requests over to be refused here.
        return _refuse(400, "missing Host")
    # aiohttp decodes chunked and drops any coding before it (gzip, chunked): relaying
    # the body without it would change what the client sent (RFC 9112 section 6.1: 501).
    if (codings := _codings(request)) and codings != ["chunked"]:
        return _refuse(501, "unsupported transfer coding")
    if request.method == "CONNECT":
        return json_error(405, "proxy", "CONNECT is not supported")
    if not request.raw_path.startswith("/"):
        return json_error(400, "proxy", "request target must be a path")
    return await handler(request)


@web.middleware
async def _watched(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Tell the connection's watch (``HandedOver``) when a request is being handled."""
    watch = HandedOver.of(request.transport)
    if watch is None:
        return await handler(request)
    watch.busy()
    try:
        return await handler(request)
    finally:
        watch.idle()


def handover_app(
    forwarder: Forwarder,
    tunnel: WebSocketTunnel,
    clients: ClientSettings,
    timed_out: Callable[[ClientTimeout], None],
) -> web.Application:
    """The application that continues handed-over connections; it listens nowhere itself.

    Its request bodies are bounded by ``clients.body_timeout_s`` of silence
    (reported to ``timed_out``); aiohttp's server lacks a timeout of its own.
    """
    app = web.Application(
        middlewares=[_watched, _origin_form_only],
        handler_args={"max_field_size": MAX_LINE},
    )

    async def handle(request: web.Request) -> web.StreamResponse:
        if is_upgrade(request):
            inbound = AiohttpInbound(request, clients.body_timeout_s, timed_out)
            tunnelled = await tunnel.relay(request, forwarder.upgrade(inbound))
            if isinstance(tunnelled, Refusal):
                return json_error(tunnelled.status, tunnelled.upstream, tunnelled.reason)
            return tunnelled
        inbound = AiohttpInbound(request, clients.body_timeout_s, timed_out)
        try:
            await forwarder.handle(inbound)
        except ConnectionError:
            # The client went away, or was cut off for a stalled body: nobody to
            # answer (the lean server aborts the same way). aiohttp still wants a
            # response; this one writes nothing (499: "client closed request").
            inbound.abort()
            return WrittenAnswer(499, keep_alive=False)
        assert inbound.response is not None
        return inbound.response

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


class AiohttpInbound:
    """``Inbound`` over an aiohttp request; the handler returns ``response``.

    The request's parts are read from the raw bytes aiohttp kept (Latin-1, as
    the lean server reads them), and the answer goes out through
    ``shadowproxy.http.answer`` as the lean server's does: aiohttp's own
    response writer would encode legacy's header bytes as UTF-8 and add its
    Date, Server and Content-Type.
    """

    __slots__ = ("_body_timeout_s", "_headers", "_request", "_streaming", "_timed_out", "response")

    def __init__(
        self,
        request: web.Request,
        body_timeout_s: float,
        timed_out: Callable[[ClientTimeout], None],
    ) -> None:
        self._request = request
        self._body_timeout_s = body_timeout_s
        self._timed_out = timed_out
        self._headers: CIMultiDict[str] | None = None
        self._streaming: Streaming | None = None
        self.response: WrittenAnswer | None = None

    @property
    def method(self) -> str:
        return self._request.method

    @property
    def raw_target(self) -> str:
        # aiohttp decodes the target as UTF-8 (surrogates for other bytes): back to the bytes.
        raw = self._request.raw_path.encode("utf-8", "surrogateescape").decode("latin-1")
        return origin_target(raw)

    @property
    def headers(self) -> MultiMapping[str]:
        if self._headers is None:
            self._headers = CIMultiDict(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in self._request.raw_headers
            )
        return self._headers

    @property
    def remote(self) -> str:
        return self._request.remote or ""

    @property
    def scheme(self) -> str:
        return self._request.scheme

    @property
    def content_length(self) -> int | None:
        return self._request.content_length

    @property
    def has_body(self) -> bool:
        return self._request.body_exists

    @property
    def cookies(self) -> Mapping[str, str]:
        return self._request.cookies

    async def read(self, limit: int) -> bytes:
        return await self._body(self._request.content.read(limit))

    async def body_chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self._body(self._request.content.readany()):
            yield chunk

    async def _body(self, reading: Awaitable[bytes]) -> bytes:
        """Body bytes, or the connection cut when the client stays silent too long."""
        try:
            async with asyncio.timeout(self._body_timeout_s):
                return await reading
        except TimeoutError:
            self._timed_out(ClientTimeout.BODY)
            self.abort()
            raise ConnectionResetError("the client stopped sending its request body") from None

    @property
    def _version(self) -> str:
        version = self._request.version
        return f"{version.major}.{version.minor}"

    def answer(self, status: int, reason: str, headers: Pairs, body: bytes) -> None:
        keep_alive = self._request.keep_alive
        framed, sent = whole(self._version, self.method, status, reason, headers, body, keep_alive)
        self.response = WrittenAnswer(status, keep_alive, framed + sent)

    async def start(self, status: int, reason: str, headers: Pairs) -> None:
        framed = streaming(
            self._version, self.method, status, reason, headers, self._request.keep_alive
        )
        self._streaming = framed
        self.response = WrittenAnswer(status, framed.keep_alive)
        await self._request.writer.write(framed.head)

    async def write(self, chunk: bytes) -> None:
        framed = self._streaming
        assert framed is not None
        if chunk and not framed.bodiless:
            await self._request.writer.write(body_chunk(chunk, framed.chunked))

    async def end(self) -> None:
        framed = self._streaming
        assert framed is not None
        if framed.chunked:
            await self._request.writer.write(LAST_CHUNK)

    def abort(self) -> None:
        if self._request.transport is not None:
            self._request.transport.abort()


class WrittenAnswer(web.StreamResponse):
    """An answer whose bytes ``AiohttpInbound`` writes itself.

    aiohttp prepares and ends every response its handler returns; this one
    then writes only what ``answer`` left for it (a whole answer) and tells
    aiohttp whether the connection stays open.
    """

    def __init__(self, status: int, keep_alive: bool, pending: bytes = b"") -> None:
        super().__init__(status=status)
        self._keeps_alive = keep_alive
        self._pending = pending

    @property
    def keep_alive(self) -> bool:
        return self._keeps_alive

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        pending, self._pending = self._pending, b""
        if pending:
            await request.writer.write(pending)
        return request.writer

    async def write_eof(self, data: bytes = b"") -> None:
        """Nothing to add: the answer's framing was written with it."""


class MalformedRequestFilter(logging.Filter):
    """Rewrites aiohttp's parse-error records as a one-line warning without details."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno = logging.WARNING
            record.levelname = "WARNING"
            record.msg = "rejected malformed request: %s"
            record.args = (type(exc).__name__,)
            record.exc_info = None
            record.exc_text = None
        return True


def install_log_filter() -> None:
    """Attach the filter to aiohttp's server logger (idempotent)."""
    logger = logging.getLogger(_SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
