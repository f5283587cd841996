"""The hot path: answer every client request from legacy, unchanged, at legacy's speed.

Legacy's status, end-to-end headers and body bytes go to the client as they
arrive; at most ``compare_max_bytes`` is kept aside for comparison. Legacy
failures become 502/504 with a small JSON body; a legacy reset mid-body
aborts the client connection so a cut body never looks complete. The
shadow path is started before legacy is called and told legacy's outcome
afterwards; nothing it does is awaited here.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import structlog
from aiohttp import web

from shadowproxy.model import ErrorKind, Observation, RequestFacts, SkipReason
from shadowproxy.model import Upstream as UpstreamName
from shadowproxy.proxy.headers import request_headers, response_headers
from shadowproxy.proxy.routing import Route, RouteTable
from shadowproxy.proxy.shadow import Shadow, ShadowRequest
from shadowproxy.proxy.upstream import PREAMBLE_ERRORS, Upstream, classify_error, raw_headers
from shadowproxy.proxy.websocket import is_upgrade, tunnel_websocket
from shadowproxy.settings import Settings

__all__ = ["Forwarder", "RequestSink", "json_error"]

log = structlog.get_logger(__name__)

VIA = "1.1 shadowproxy"
_NO_BODY_STATUS = frozenset({204, 304})
_MAX_REQUEST_ID = 128


class RequestSink(Protocol):
    """What the hot path reports (``shadowproxy.sinks.Evidence`` satisfies it)."""

    def on_request(self, route: str, method: str, status: int | None) -> None: ...
    def on_upstream(self, upstream: UpstreamName, route: str, observation: Observation) -> None: ...


def json_error(status: int, upstream: str, reason: str) -> web.Response:
    """The small JSON body the proxy answers with when it cannot relay legacy."""
    return web.json_response({"error": reason, "upstream": upstream}, status=status)


@dataclass(frozen=True, slots=True)
class _Body:
    data: bytes
    complete: bool
    """False when the body exceeded ``mirror_max_body`` and is being streamed."""


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return secrets.token_hex(8)


async def _read_body(request: web.Request, limit: int) -> _Body:
    """Buffer the request body up to ``limit``; beyond it, stream the rest to legacy."""
    if not request.body_exists:
        return _Body(b"", True)
    declared = request.content_length
    if declared is not None and declared > limit:
        return _Body(b"", False)
    buffered = bytearray()
    while chunk := await request.content.read(limit + 1 - len(buffered)):
        buffered += chunk
        if len(buffered) > limit:
            return _Body(bytes(buffered), False)
    return _Body(bytes(buffered), True)


async def _stream_rest(prefix: bytes, request: web.Request) -> AsyncIterator[bytes]:
    yield prefix
    async for chunk in request.content.iter_any():
        yield chunk


class Forwarder:
    """The catch-all request handler for one worker."""

    def __init__(
        self,
        *,
        settings: Settings,
        routes: RouteTable,
        legacy: Upstream,
        shadow: Shadow,
        sink: RequestSink,
    ) -> None:
        self.settings = settings
        self.routes = routes
        self._legacy = legacy
        self._shadow = shadow
        self._sink = sink

    def reconfigure(self, settings: Settings, routes: RouteTable) -> None:
        """Swap routes, sampling and rules (SIGHUP); in-flight requests keep their own."""
        self.settings = settings
        self.routes = routes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one client request from legacy and mirror it when allowed."""
        raw_target = request.raw_path
        path, _, query = raw_target.partition("?")
        route = self.routes.resolve(path)
        request_id = _request_id(request)
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            if is_upgrade(request):
                self._shadow.skip(route, SkipReason.UPGRADE)
                return await tunnel_websocket(request, self._legacy, raw_target)
            return await self._forward(request, route, raw_target, path, query, request_id)

    async def _forward(
        self,
        request: web.Request,
        route: Route,
        raw_target: str,
        path: str,
        query: str,
        request_id: str,
    ) -> web.StreamResponse:
        settings = self.settings
        method = request.method
        body = await _read_body(request, settings.shadow.mirror_max_body)
        scheme = request.scheme
        client_host = request.headers.get("Host")
        upstream_headers = [
            (name, value)
            for name, value in request_headers(
                request.headers.items(),
                client_ip=request.remote or "",
                scheme=scheme,
                host=client_host,
                via=VIA,
            )
            if name.lower() not in {"host", "expect"}
        ]
        own_host = settings.upstreams.host_header == "upstream"

        legacy_seen: asyncio.Future[Observation | None] | None = None
        skip = self._shadow.decide(route, method, body_complete=body.complete)
        if skip is None:
            legacy_seen = self._shadow.start(
                ShadowRequest(
                    facts=RequestFacts(
                        id=request_id,
                        method=method,
                        path=path,
                        query=query,
                        route=route.name,
                        domain=route.domain,
                        started_at=time.time(),
                    ),
                    route=route,
                    raw_target=raw_target,
                    headers=[*upstream_headers, ("X-Shadow-Request", "1")],
                    host=client_host,
                    body=body.data,
                )
            )
        else:
            self._shadow.skip(route, skip)

        legacy_host = self._legacy.host if own_host else client_host
        headers = [*upstream_headers, ("Host", legacy_host)] if legacy_host else upstream_headers
        observation: Observation | None = None
        try:
            response, observation = await self._relay(
                request, route, method, raw_target, headers, body
            )
            return response
        finally:
            if legacy_seen is not None and not legacy_seen.done():
                legacy_seen.set_result(observation)

    async def _relay(
        self,
        request: web.Request,
        route: Route,
        method: str,
        raw_target: str,
        headers: list[tuple[str, str]],
        body: _Body,
    ) -> tuple[web.StreamResponse, Observation | None]:
        """Send to legacy and stream its answer back; the observation is None on failure."""
        settings = self.settings
        started = time.perf_counter()
        data = body.data if body.complete else _stream_rest(body.data, request)
        if not body.complete and request.content_length is not None:
            headers = [*headers, ("Content-Length", str(request.content_length))]
        try:
            async with asyncio.timeout(settings.legacy.timeout_s):
                upstream_response = await self._legacy.session.request(
                    method,
                    self._legacy.url(raw_target),
                    headers=headers,
                    data=data if (body.data or not body.complete) else None,
                    allow_redirects=False,
                )
        except PREAMBLE_ERRORS as exc:
            kind = classify_error(exc)
            failed = Observation.failed(kind, time.perf_counter() - started, type(exc).__name__)
            self._sink.on_upstream(UpstreamName.LEGACY, route.name, failed)
            status = 504 if kind is ErrorKind.TIMEOUT else 502
            self._sink.on_request(route.name, method, status)
            log.warning("legacy failed", route=route.name, reason=str(kind), status=status)
            return json_error(status, "legacy", str(kind)), None

        async with upstream_response:
            return await self._stream_back(request, route, method, upstream_response, started)

    async def _stream_back(
        self,
        request: web.Request,
        route: Route,
        method: str,
        upstream: aiohttp.ClientResponse,
        started: float,
    ) -> tuple[web.StreamResponse, Observation | None]:
        cap = self.settings.shadow.compare_max_bytes
        headers = raw_headers(upstream)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in response_headers(headers, VIA):
            response.headers.add(name, value)
        self._sink.on_request(route.name, method, upstream.status)
        await response.prepare(request)
        kept = bytearray()
        size = 0
        has_body = method != "HEAD" and upstream.status not in _NO_BODY_STATUS
        try:
            if has_body:
                async for chunk in upstream.content.iter_any():
                    size += len(chunk)
                    if len(kept) <= cap:
                        kept += chunk[: cap + 1 - len(kept)]
                    await response.write(chunk)
            await response.write_eof()
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as exc:
            if isinstance(exc, aiohttp.ClientConnectionResetError):
                # The client went away; legacy is fine, there is just nobody to answer.
                log.info("client disconnected", route=route.name)
                return response, None
            kind = classify_error(exc)
            self._sink.on_upstream(
                UpstreamName.LEGACY,
                route.name,
                Observation.failed(kind, time.perf_counter() - started, type(exc).__name__),
            )
            log.warning("legacy failed mid-body; aborting client connection", reason=str(kind))
            if request.transport is not None:
                request.transport.abort()
            return response, None
        truncated = len(kept) > cap
        observation = Observation(
            status=upstream.status,
            headers=headers,
            body=bytes(kept[:cap]),
            elapsed_s=time.perf_counter() - started,
            body_size=size,
            truncated=truncated,
        )
        self._sink.on_upstream(UpstreamName.LEGACY, route.name, observation)
        return response, observation
