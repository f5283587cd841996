"""One worker's HTTP data plane, built by plain code: upstreams and the hot path.

``build_worker`` opens legacy's pool, the candidate's and secondary's pools for
mirroring, a second candidate pool with legacy's limits for the requests the
candidate answers (canary, candidate mode, so answering never competes with
mirroring), the WebSocket tunnel to legacy and the ``Forwarder`` over them,
mirroring into the shadow task pool of ``ProxyParts`` (which the gRPC data
plane shares). ``Worker.aclose`` undoes it after the listeners have drained
and the shadow pool has closed: the upstream connections close.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shadowproxy.cutover.ownership import Ownership
from shadowproxy.http.forward import Forwarder
from shadowproxy.http.relay import RequestSink
from shadowproxy.http.routing import RouteTable
from shadowproxy.http.shadow import HttpShadow
from shadowproxy.http.upstream import UpstreamClient, open_upstream
from shadowproxy.http.websocket import WebSocketTunnel, open_session
from shadowproxy.settings import RouteCapture, RouteStream, Settings, UpstreamSettings
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.control import LagMonitor, ShadowSwitch
from shadowproxy.shadow.identity import IdentityMap
from shadowproxy.shadow.mirror import EvidenceSink
from shadowproxy.shadow.streams import StreamSlots
from shadowproxy.shadow.tasks import TaskPool
from shadowproxy.sinks.capture import Capture
from shadowproxy.sinks.secrets import SecretFinder
from shadowproxy.tls import client_context

__all__ = ["ProxyParts", "ProxySink", "Worker", "build_worker", "route_table"]


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
    secrets: SecretFinder
    """Finds each request's own secrets (``redact`` settings), scrubbed wherever they return."""
    ownership: Ownership
    """Route ownership: who answers each request."""
    pool: TaskPool
    """The shadow task pool every data plane of the worker spawns its mirrors in."""
    streams: StreamSlots
    """The worker's stream slots (``shadow.max_streams``), shared by every data plane."""
    capture: Capture | None = None
    """The capture file requests are sampled into for replay (docs/replay.md)."""


@dataclass(frozen=True, slots=True)
class Worker:
    """The HTTP hot path and what it owns: the upstreams and the WebSocket tunnel."""

    forwarder: Forwarder
    tunnel: WebSocketTunnel
    upstreams: tuple[UpstreamClient, ...]

    async def aclose(self) -> None:
        """Close every upstream (after the shadow pool, which uses them, has closed)."""
        for upstream in self.upstreams:
            await upstream.aclose()
        await self.tunnel.aclose()


_MAX_WINDOW_S = 2 * 3600.0
"""Longer than any stream window (``max_seconds`` and ``grace_s`` are at most an hour each)."""


def route_table(settings: Settings) -> RouteTable:
    """The route table the settings describe."""
    return RouteTable(
        settings.routes,
        default_sample_percent=settings.shadow.sample_percent,
        default_rules=settings.compare,
        max_routes=settings.max_routes,
        default_stream=RouteStream(window=settings.streams),
        default_capture=RouteCapture(settings.capture.percent, settings.capture.per_second),
    )


def build_worker(settings: Settings, names: UpstreamSettings, parts: ProxyParts) -> Worker:
    """The HTTP data plane of one worker (call it on the loop that will run it)."""
    tls = client_context(settings.upstream_tls)
    # Legacy's limits and timeouts hold for every upstream that answers clients.
    limits = settings.legacy

    def answering(name: str, base: str) -> UpstreamClient:
        return open_upstream(
            name,
            base,
            connect_timeout_s=limits.connect_timeout_s,
            read_timeout_s=limits.timeout_s,
            limit=limits.max_connections,
            tls=tls,
        )

    legacy = answering("legacy", names.legacy)
    candidate = answering("candidate", names.candidate)
    mirrored = [
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
    shadow = HttpShadow(
        settings=settings.shadow,
        pool=parts.pool,
        streams=parts.streams,
        candidate=mirrored[0],
        secondary=mirrored[1] if len(mirrored) > 1 else None,
        comparisons=parts.comparisons,
        evidence=parts.sink,
        switch=parts.switch,
        lag=parts.lag,
        own_host=names.host_header == "upstream",
        legacy=legacy,
        secrets=parts.secrets,
        ownership=parts.ownership,
        identities=IdentityMap(settings.identity.max_pairs),
    )
    forwarder = Forwarder(
        settings=settings,
        routes=route_table(settings),
        legacy=legacy,
        shadow=shadow,
        sink=parts.sink,
        secrets=parts.secrets,
        candidate=candidate,
        ownership=parts.ownership,
        capture=parts.capture,
    )
    tunnel = WebSocketTunnel(
        forwarder,
        legacy,
        candidate,
        open_session(
            connect_timeout_s=limits.connect_timeout_s,
            read_timeout_s=limits.timeout_s,
            limit=limits.max_connections,
            tls=tls,
        ),
        # Shadow sessions: the shadow's limits, and a read timeout the window outlasts
        # (the copy's window ends it).
        open_session(
            connect_timeout_s=settings.shadow.connect_timeout_s,
            read_timeout_s=_MAX_WINDOW_S,
            limit=settings.shadow.max_connections,
            tls=tls,
        ),
        settings.shadow,
    )
    return Worker(forwarder=forwarder, tunnel=tunnel, upstreams=(legacy, candidate, *mirrored))
