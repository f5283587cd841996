"""The proxy's aiohttp application: upstream sessions, the shadow pool and the catch-all handler.

Sessions and the shadow pool live in the application's cleanup context.
Cleanup runs after aiohttp has stopped accepting and drained in-flight client
requests, and runs in reverse order: the shadow pool gets its grace period and
is cancelled first, then the upstream sessions close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from shadowproxy.compare import Comparator
from shadowproxy.proxy.control import LagMonitor, ShadowSwitch
from shadowproxy.proxy.forward import Forwarder, RequestSink, json_error
from shadowproxy.proxy.routing import RouteTable
from shadowproxy.proxy.shadow import EvidenceSink, Shadow
from shadowproxy.proxy.tasks import TaskPool
from shadowproxy.proxy.upstream import Upstream, open_session
from shadowproxy.settings import Settings

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
    comparator: Comparator


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


@web.middleware
async def _origin_form_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """CONNECT and non-origin-form targets never reach an upstream."""
    if request.method == "CONNECT":
        return json_error(405, "proxy", "CONNECT is not supported")
    if not request.raw_path.startswith("/"):
        return json_error(400, "proxy", "request target must be a path")
    return await handler(request)


def build_proxy_app(settings: Settings, parts: ProxyParts) -> web.Application:
    """The client-facing application for one worker."""
    app = web.Application(middlewares=[_origin_form_only], handler_args={"max_field_size": 8190})

    async def upstreams(app: web.Application) -> AsyncIterator[None]:
        legacy_session = open_session(
            connect_timeout_s=settings.legacy.connect_timeout_s,
            read_timeout_s=settings.legacy.timeout_s,
            limit=settings.legacy.max_connections,
        )
        shadow_sessions = [
            open_session(
                connect_timeout_s=settings.shadow.connect_timeout_s,
                read_timeout_s=settings.shadow.timeout_s,
                limit=settings.shadow.max_connections,
            )
            for _ in range(2 if settings.upstreams.secondary else 1)
        ]
        pool = TaskPool(settings.shadow.max_inflight, on_change=parts.sink.set_inflight)
        secondary = (
            Upstream("secondary", settings.upstreams.secondary, shadow_sessions[1])
            if settings.upstreams.secondary
            else None
        )
        shadow = Shadow(
            settings=settings.shadow,
            pool=pool,
            candidate=Upstream("candidate", settings.upstreams.candidate, shadow_sessions[0]),
            secondary=secondary,
            comparator=parts.comparator,
            evidence=parts.sink,
            switch=parts.switch,
            lag=parts.lag,
            own_host=settings.upstreams.host_header == "upstream",
        )
        app[POOL] = pool
        app[FORWARDER] = Forwarder(
            settings=settings,
            routes=route_table(settings),
            legacy=Upstream("legacy", settings.upstreams.legacy, legacy_session),
            shadow=shadow,
            sink=parts.sink,
        )
        try:
            yield
        finally:
            await pool.close(settings.shadow.grace_s)
            for session in (legacy_session, *shadow_sessions):
                await session.close()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await request.app[FORWARDER].handle(request)

    app.cleanup_ctx.append(upstreams)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
