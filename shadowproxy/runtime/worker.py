"""The proxy's aiohttp application: upstream sessions, the shadow pool and the catch-all handler.

Sessions and the shadow pool live in the application's cleanup context.
Cleanup runs after aiohttp has stopped accepting and drained in-flight client
requests, and runs in reverse order: the shadow pool gets its grace period and
is cancelled first, then the upstream sessions close. The candidate has a
second session with legacy's limits for the requests it answers (canary,
candidate mode), so answering never competes with mirroring for the shadow pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import HttpVersion10, HttpVersion11, web

from shadowproxy.proxy.comparisons import Comparisons
from shadowproxy.proxy.control import LagMonitor, ShadowSwitch
from shadowproxy.proxy.forward import Forwarder, RequestSink, json_error
from shadowproxy.proxy.mirror import EvidenceSink
from shadowproxy.proxy.ownership import Ownership
from shadowproxy.proxy.routing import RouteTable
from shadowproxy.proxy.server import MAX_HEADERS
from shadowproxy.proxy.shadow import Shadow
from shadowproxy.proxy.tasks import TaskPool
from shadowproxy.proxy.upstream import open_upstream
from shadowproxy.settings import Settings
from shadowproxy.tls import client_context

__all__ = ["FORWARDER", "POOL", "ProxyParts", "build_proxy_app", "route_table"]


class ProxySink(RequestSink, EvidenceSink, Protocol):
    """Everything the proxy reports to; ``shadowproxy.sinks.Evidence`` is one."""

    def set_inflight(self, count: int) -> None: ...


@dataclass(frozen=True, slots=True)
class ProxyParts:
    """The long-lived pieces one worker shares between its proxy and admin listeners."""

    sink: ProxySink
    switch: ShadowSwitch
    lag: LagMonitor
    comparisons: Comparisons
    ownership: Ownership | None = None
    """Route ownership; None answers every request from legacy."""


_HTTP_VERSIONS = frozenset({HttpVersion10, HttpVersion11})

FORWARDER = web.AppKey("forwarder", Forwarder)
POOL = web.AppKey("shadow_pool", TaskPool)


def route_table(settings: Settings) -> RouteTable:
    """The route table the settings describe."""
    return RouteTable(
        settings.routes,
        default_sample_percent=settings.shadow.sample_percent,
        default_rules=settings.compare,
        max_routes=settings.max_routes,
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


def build_proxy_app(settings: Settings, parts: ProxyParts) -> web.Application:
    """The client-facing application for one worker."""
    app = web.Application(
        middlewares=[_origin_form_only],
        handler_args={"max_field_size": 8190},
    )

    async def upstreams(app: web.Application) -> AsyncIterator[None]:
        names = settings.upstreams
        tls = client_context(names.tls)
        legacy = open_upstream(
            "legacy",
            names.legacy,
            connect_timeout_s=settings.legacy.connect_timeout_s,
            read_timeout_s=settings.legacy.timeout_s,
            limit=settings.legacy.max_connections,
            tls=tls,
            websocket=True,
        )
        shadow_upstreams = [
            open_upstream(
                name,
                base,
                connect_timeout_s=settings.shadow.connect_timeout_s,
                read_timeout_s=settings.shadow.timeout_s,
                limit=settings.shadow.max_connections,
                tls=tls,
            )
            for name, base in (("candidate", names.candidate), ("secondary", names.secondary))
            if base
        ]
        answering = open_upstream(
            "candidate",
            names.candidate,
            connect_timeout_s=settings.legacy.connect_timeout_s,
            read_timeout_s=settings.legacy.timeout_s,
            limit=settings.legacy.max_connections,
            tls=tls,
        )
        pool = TaskPool(settings.shadow.max_inflight, on_change=parts.sink.set_inflight)
        shadow = Shadow(
            settings=settings.shadow,
            pool=pool,
            candidate=shadow_upstreams[0],
            secondary=shadow_upstreams[1] if len(shadow_upstreams) > 1 else None,
            comparisons=parts.comparisons,
            evidence=parts.sink,
            switch=parts.switch,
            lag=parts.lag,
            own_host=settings.upstreams.host_header == "upstream",
            legacy=legacy,
            ownership=parts.ownership,
        )
        app[POOL] = pool
        app[FORWARDER] = Forwarder(
            settings=settings,
            routes=route_table(settings),
            legacy=legacy,
            shadow=shadow,
            sink=parts.sink,
            candidate=answering,
            ownership=parts.ownership,
        )
        try:
            yield
        finally:
            await pool.close(settings.shadow.grace_s)
            for upstream in (legacy, answering, *shadow_upstreams):
                await upstream.aclose()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await request.app[FORWARDER].handle_aiohttp(request)

    app.cleanup_ctx.append(upstreams)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
