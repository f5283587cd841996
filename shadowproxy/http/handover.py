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

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiMapping

from shadowproxy.http.forward import Forwarder
from shadowproxy.http.inbound import JSON, Pairs, error_body
from shadowproxy.http.server_connection import MAX_HEADERS, MAX_LINE
from shadowproxy.http.websocket import Refusal, WebSocketTunnel, is_upgrade
from shadowproxy.model import SkipReason

__all__ = [
    "AiohttpInbound",
    "MalformedRequestFilter",
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


@web.middleware
async def _origin_form_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """CONNECT, non-origin-form targets and unknown HTTP versions never reach an upstream."""
    if request.version not in _HTTP_VERSIONS:
        # aiohttp's pure-Python parser accepts any HTTP/x.y; an upstream might read it otherwise.
        return _refuse(400, "unsupported HTTP version")
    # aiohttp's parsers allow 128 header lines and count differently from each other.
    if len(request.raw_headers) > MAX_HEADERS:
        return _refuse(431, "too many request headers")
    if request.method == "CONNECT":
        return json_error(405, "proxy", "CONNECT is not supported")
    if not request.raw_path.startswith("/"):
        return json_error(400, "proxy", "request target must be a path")
    return await handler(request)


def handover_app(forwarder: Forwarder, tunnel: WebSocketTunnel) -> web.Application:
    """The application that continues handed-over connections; it listens nowhere itself."""
    app = web.Application(
        middlewares=[_origin_form_only],
        handler_args={"max_field_size": MAX_LINE},
    )

    async def handle(request: web.Request) -> web.StreamResponse:
        if is_upgrade(request):
            forwarder.not_mirrored(request.raw_path, request.headers.items(), SkipReason.UPGRADE)
            tunnelled = await tunnel.relay(request)
            if isinstance(tunnelled, Refusal):
                return json_error(tunnelled.status, tunnelled.upstream, tunnelled.reason)
            return tunnelled
        inbound = AiohttpInbound(request)
        await forwarder.handle(inbound)
        assert inbound.response is not None
        return inbound.response

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


class AiohttpInbound:
    """``Inbound`` over an aiohttp request; the handler returns ``response``."""

    __slots__ = ("_request", "response")

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.response: web.StreamResponse | None = None

    @property
    def method(self) -> str:
        return self._request.method

    @property
    def raw_target(self) -> str:
        return self._request.raw_path

    @property
    def headers(self) -> MultiMapping[str]:
        return self._request.headers

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
        return await self._request.content.read(limit)

    async def body_chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._request.content.iter_any():
            yield chunk

    def answer(self, status: int, reason: str, headers: Pairs, body: bytes) -> None:
        self.response = web.Response(body=body, status=status, reason=reason, headers=headers)

    async def start(self, status: int, reason: str, headers: Pairs) -> None:
        response = web.StreamResponse(status=status, reason=reason)
        response.headers.extend(headers)
        self.response = response
        await response.prepare(self._request)

    async def write(self, chunk: bytes) -> None:
        assert self.response is not None
        await self.response.write(chunk)

    async def end(self) -> None:
        assert self.response is not None
        await self.response.write_eof()

    def abort(self) -> None:
        if self._request.transport is not None:
            self._request.transport.abort()


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
