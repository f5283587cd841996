"""The listeners of one process: its data planes and the admin listener, in start and stop order.

Each data plane is on when its section is configured: HTTP (``upstreams``;
a gRPC-only sidecar has none and no HTTP listener), gRPC (``grpc``), NATS
(``nats``; it listens nowhere: it subscribes on the NATS servers). They
share the pieces of ``ProxyParts``: the shadow task pool, stream slots,
evidence, comparisons, switches. ``Listeners.start`` starts them, then the
admin listener, and gives the bound addresses (``Bound``). ``stop`` stops
accepting, drains in-flight client requests (up to ``drain_s``), gives
shadow work ``shadow.grace_s`` and cancels the rest, closes the upstream
connections, then stops the admin listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from shadowproxy.config import ConfigError
from shadowproxy.http.handover import handover_app
from shadowproxy.http.server import Server
from shadowproxy.runtime.process import AdminListener
from shadowproxy.runtime.worker import ProxyParts, Worker, build_worker, route_table
from shadowproxy.settings import HostAddress, Settings, UpstreamSettings
from shadowproxy.sinks import Evidence
from shadowproxy.tls import server_context

if TYPE_CHECKING:
    from shadowproxy.grpcproxy import GrpcProxy
    from shadowproxy.natsproxy import NatsProxy

__all__ = ["Bound", "Listeners"]


@dataclass(frozen=True, slots=True)
class Bound:
    """The addresses actually bound (ports resolved when 0 was asked for); None when off."""

    proxy: HostAddress | None
    admin: HostAddress | None
    grpc: HostAddress | None = None
    scheme: str = "http"
    """The HTTP listener's scheme (``https`` with ``listen_tls``)."""


class Listeners:
    """The HTTP, gRPC, NATS and admin listeners of one process, started and stopped in order."""

    def __init__(
        self, settings: Settings, parts: ProxyParts, evidence: Evidence, *, nats_events: bool
    ) -> None:
        self._settings = settings
        self._parts = parts
        self._evidence = evidence
        self._nats_events = nats_events
        self.worker: Worker | None = None
        self._runner: web.AppRunner | None = None
        self.server: Server | None = None
        self.grpc: GrpcProxy | None = None
        self.nats: NatsProxy | None = None
        self.admin: AdminListener | None = None

    async def start(self, admin: Callable[[], Awaitable[AdminListener]] | None) -> Bound:
        """Start the configured data planes, then the admin listener (``admin``, when given)."""
        settings = self._settings
        if settings.upstreams is not None:
            await self._start_http(settings.upstreams)
        if settings.grpc is not None:
            await self._start_grpc()
        if settings.nats is not None:
            await self._start_nats()
        if admin is not None:
            self.admin = await admin()
        server = self.server
        return Bound(
            proxy=None if server is None else HostAddress(*server.address),
            admin=None if self.admin is None else self.admin.address,
            grpc=None if self.grpc is None else self.grpc.address,
            scheme="http" if server is None else server.scheme,
        )

    async def _start_http(self, upstreams: UpstreamSettings) -> None:
        """Build the HTTP data plane and listen for clients."""
        settings = self._settings
        worker = self.worker = build_worker(settings, upstreams, self._parts)
        # aiohttp's server takes only the connections the lean server hands over;
        # it listens nowhere.
        runner = self._runner = web.AppRunner(
            handover_app(
                worker.forwarder,
                worker.tunnel,
                settings.clients,
                self._evidence.on_client_timeout,
            ),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=settings.drain_s,
            # The watch of handed-over connections (HandedOver) closes them first;
            # aiohttp's own timer (an hour by default) backs it up.
            keepalive_timeout=settings.clients.keepalive_timeout_s,
        )
        await runner.setup()
        handed_over = runner.server
        assert handed_over is not None
        server = self.server = Server(
            worker.forwarder.handle,
            handed_over,
            max_connections=settings.max_client_connections,
            elsewhere=lambda: len(handed_over.connections),
            refused=self._evidence.on_connection_refused,
            clients=settings.clients,
            timed_out=self._evidence.on_client_timeout,
        )
        await server.start(
            settings.listen.host,
            settings.listen.port,
            reuse_port=settings.workers > 1,
            backlog=1024,
            tls=None if settings.listen_tls is None else server_context(settings.listen_tls),
        )

    async def _start_grpc(self) -> None:
        """Listen for gRPC calls; they share the shadow pool and stream slots."""
        from shadowproxy.grpcproxy import DescriptorError, GrpcProxy

        parts = self._parts
        try:
            self.grpc = GrpcProxy(
                self._settings,
                pool=parts.pool,
                comparisons=parts.comparisons,
                evidence=self._evidence,
                secrets=parts.secrets,
                switch=parts.switch,
                lag=parts.lag,
                streams=parts.streams,
                ownership=parts.ownership,
            )
        except DescriptorError as exc:
            raise ConfigError(str(exc)) from None
        await self.grpc.start()

    async def _start_nats(self) -> None:
        """Serve the NATS request subjects and watch the event subjects (``nats_events``)."""
        from shadowproxy.natsproxy import NatsProxy

        parts = self._parts
        self.nats = NatsProxy(
            self._settings,
            pool=parts.pool,
            comparisons=parts.comparisons,
            evidence=self._evidence,
            secrets=parts.secrets,
            switch=parts.switch,
            lag=parts.lag,
        )
        await self.nats.start(events=self._nats_events)

    def reconfigure(self, fresh: Settings) -> None:
        """Swap what a reload changes in the data planes (routes, sampling, rules, methods)."""
        if self.worker is not None:
            self.worker.forwarder.reconfigure(fresh, route_table(fresh))
        if self.grpc is not None:
            self.grpc.reconfigure(fresh)

    async def stop(self) -> None:
        """Stop accepting, drain, end shadow work, close the data planes, then the admin."""
        settings = self._settings
        drain_s = settings.drain_s
        if self.grpc is not None:
            await self.grpc.stop(drain_s)
        if self.nats is not None:
            await self.nats.stop(drain_s)
        if self.server is not None and self._runner is not None:
            handed_over = self._runner.server
            assert handed_over is not None, "the runner is set up before the server starts"
            # Both servers at once: connections handed to aiohttp's get the same deadline.
            handed_over.pre_shutdown()
            await asyncio.gather(self.server.shutdown(drain_s), handed_over.shutdown(drain_s))
        if self._runner is not None:
            await self._runner.cleanup()
        # Shadow work uses the upstream connections: it ends before they close.
        await self._parts.pool.close(settings.shadow.grace_s)
        if self.worker is not None:
            await self.worker.aclose()
        if self.grpc is not None:
            await self.grpc.close()
        if self.nats is not None:
            await self.nats.close()
        if self.admin is not None:
            await self.admin.aclose()
