"""The admin listener: metrics, health, status and the shadow kill switch.

It runs on its own port so operators and Prometheus never compete with
client traffic. GETs stay open for probes and scrapers. Every call that
changes state (the POSTs and the DELETE) needs the bearer token when one is
configured, on any address, compared as bytes in constant time; without a
token they are refused (403), unless the configuration explicitly opens a
loopback listener (``admin_allow_unauthenticated_loopback``).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from shadowproxy import __version__
from shadowproxy.admin.cutover import Handler, add_cutover_routes
from shadowproxy.admin.scrape import MetricsRenderer
from shadowproxy.cutover.ownership import Ownership
from shadowproxy.shadow.control import ShadowSwitch

__all__ = ["WRITES_OFF", "AdminContext", "build_admin_app", "legacy_reachable"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AdminContext:
    """What the admin endpoints read and flip."""

    switch: ShadowSwitch
    render_metrics: Callable[[], tuple[bytes, str]]
    status: Callable[[], Mapping[str, object]]
    legacy: Mapping[str, str]
    """Each data plane's legacy as a URL (``http``, ``grpc``): ``/readyz`` reaches every one."""
    token: bytes | None
    """The bearer token state-changing calls must carry; None: there is none."""
    open_without_token: bool = False
    """With no token, state-changing calls are allowed (loopback opt-in) instead of refused."""
    cutover: Ownership | None = None
    """Route ownership; adds the ``/cutover`` endpoints (docs/cutover.md)."""


ADMIN = web.AppKey("admin", AdminContext)
RENDERER = web.AppKey("metrics_renderer", MetricsRenderer)
WRITES_OFF = (
    "admin writes are off: set admin_token (or SHADOWPROXY_ADMIN_TOKEN),"
    " or admin_allow_unauthenticated_loopback: true"
)
"""The 403 answer to a state-changing call: no token is set and loopback is not opened."""


_DEFAULT_PORTS = {"https": 443, "nats": 4222, "tls": 4222}


async def legacy_reachable(url: str, timeout_s: float = 1.0) -> bool:
    """True when a TCP connection to legacy at ``url`` opens within ``timeout_s``."""
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(parts.hostname, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


def _refusal(request: web.Request, ctx: AdminContext) -> web.Response | None:
    """Why a state-changing call is refused (its answer), or None when it may go ahead."""
    if ctx.token is None:
        if ctx.open_without_token:
            return None
        return web.json_response({"error": WRITES_OFF}, status=403)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # aiohttp decodes header bytes as UTF-8 with surrogateescape: this gives them back.
    presented = given.encode("utf-8", "surrogateescape")
    if scheme.lower() == "bearer" and hmac.compare_digest(presented, ctx.token):
        return None
    return web.json_response({"error": "bearer token required"}, status=401)


def _guarded(
    handler: Callable[[web.Request, AdminContext], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def guarded(request: web.Request) -> web.StreamResponse:
        ctx = request.app[ADMIN]
        refusal = _refusal(request, ctx)
        if refusal is not None:
            return refusal
        return await handler(request, ctx)

    return guarded


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = await request.app[RENDERER].render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    """Ready when every configured data plane's legacy takes a TCP connection (at once)."""
    legacy = request.app[ADMIN].legacy
    reached = await asyncio.gather(*(legacy_reachable(url) for url in legacy.values()))
    ok = all(reached)
    return web.json_response(
        {
            "ready": ok,
            "legacy": "reachable" if ok else "unreachable",
            "planes": {
                plane: "reachable" if up else "unreachable"
                for plane, up in zip(legacy, reached, strict=True)
            },
        },
        status=200 if ok else 503,
    )


async def _status(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    return web.json_response({"version": __version__, **ctx.status(), "shadow": _state(ctx)})


def _state(ctx: AdminContext) -> str:
    return "paused" if ctx.switch.paused else "on"


async def _pause(request: web.Request, ctx: AdminContext) -> web.Response:
    ctx.switch.pause()
    log.warning("shadow paused via admin API", remote=request.remote)
    return web.json_response({"shadow": _state(ctx)})


async def _resume(request: web.Request, ctx: AdminContext) -> web.Response:
    ctx.switch.resume()
    log.warning("shadow resumed via admin API", remote=request.remote)
    return web.json_response({"shadow": _state(ctx)})


def build_admin_app(ctx: AdminContext) -> web.Application:
    """The admin application."""
    app = web.Application()
    app[ADMIN] = ctx
    app[RENDERER] = MetricsRenderer(ctx.render_metrics)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/status", _status)
    app.router.add_post("/shadow/pause", _guarded(_pause))
    app.router.add_post("/shadow/resume", _guarded(_resume))
    if ctx.cutover is not None:
        add_cutover_routes(app, ctx.cutover, _guard_plain)
    return app


def _guard_plain(handler: Handler) -> Handler:
    """``_guarded`` for a handler that needs only the request."""

    async def call(request: web.Request, _: AdminContext) -> web.StreamResponse:
        return await handler(request)

    return _guarded(call)
