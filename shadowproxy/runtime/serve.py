"""Running one proxy process: evidence, listeners, signals, reload and graceful stop.

``serve`` reads top to bottom: the evidence and the pieces the listeners share
(``_open_parts``), the proxy listener with its data plane, the gRPC listener,
the admin listener (``_Listeners.start``), the housekeeping tasks, then the
wait for SIGTERM/SIGINT or ``stop``. Stop order: stop accepting, drain
in-flight client requests (up to ``drain_s``), give shadow work
``shadow.grace_s`` then cancel it, close the upstream connections, stop the
admin listener, flush and close the evidence. SIGHUP re-reads the
configuration (``RunningConfig``); an invalid one is logged and the running
one kept. Route ownership (docs/cutover.md) is kept in the state file under
``cutover.state_dir``, which every process polls; the process serving the
admin listener restores it at start and applies the modes a reload changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from shadowproxy.config import ConfigError
from shadowproxy.cutover.ownership import Ownership
from shadowproxy.http.handover import handover_app, install_log_filter
from shadowproxy.http.server import Server
from shadowproxy.runtime.process import (
    AdminListener,
    RunningConfig,
    signal_handlers,
    start_admin,
)
from shadowproxy.runtime.worker import ProxyParts, Worker, build_worker, route_table
from shadowproxy.settings import HostAddress, Settings
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.control import LagMonitor, ShadowSwitch, SharedFlag
from shadowproxy.shadow.tasks import TaskPool
from shadowproxy.sinks import Evidence, Metrics, default_worker_id, render_metrics
from shadowproxy.tls import server_context

if TYPE_CHECKING:
    from shadowproxy.grpcproxy import GrpcProxy

__all__ = ["Bound", "serve"]

log = structlog.get_logger(__name__)

_TICK_S = 1.0


@dataclass(frozen=True, slots=True)
class Bound:
    """The addresses actually bound (ports resolved when 0 was asked for)."""

    proxy: HostAddress
    admin: HostAddress | None
    grpc: HostAddress | None = None


def _tune_gc() -> None:
    # Long-lived start-up objects never need scanning again, and a higher
    # gen-0 threshold keeps full collections (multi-ms pauses) rare.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def _ticker(evidence: Evidence, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), _TICK_S)
        evidence.tick()


def _open_parts(
    settings: Settings,
    registry: CollectorRegistry,
    *,
    pause_flag: SharedFlag | None,
    controller: bool,
) -> tuple[Evidence, ProxyParts]:
    """The evidence writer, started, and the pieces every listener of this process shares.

    The ``controller`` (the process serving the admin listener) restores the
    route ownership saved in the state file; a supervisor's worker reads it.
    """
    metrics = Metrics(registry)
    metrics.prime_routes((spec.name, spec.domain) for spec in settings.routes)
    evidence = Evidence(settings, metrics, worker_id=default_worker_id())
    evidence.start()
    ownership = Ownership(settings, evidence)
    ownership.start(controller=controller)
    return evidence, ProxyParts(
        sink=evidence,
        switch=ShadowSwitch(pause_flag),
        lag=LagMonitor(),
        comparisons=Comparisons(settings.shadow.inline_compare_max_bytes),
        secrets=evidence.redactor.finder,
        ownership=ownership,
    )


class _Listeners:
    """The proxy, gRPC and admin listeners of one process, started and stopped in order."""

    def __init__(self, settings: Settings, parts: ProxyParts, evidence: Evidence) -> None:
        self._settings = settings
        self._parts = parts
        self._evidence = evidence
        self.worker: Worker | None = None
        self._runner: web.AppRunner | None = None
        self.server: Server | None = None
        self.grpc: GrpcProxy | None = None
        self.admin: AdminListener | None = None

    async def start_proxy(self) -> Server:
        """Build the data plane and listen for clients."""
        settings = self._settings
        worker = self.worker = build_worker(settings, self._parts)
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
        return server

    async def start_grpc(self, pool: TaskPool) -> None:
        """Listen for gRPC calls when ``grpc`` is configured; they share the shadow pool."""
        settings = self._settings
        if settings.grpc is None:
            return
        from shadowproxy.grpcproxy import DescriptorError, GrpcProxy

        parts = self._parts
        try:
            self.grpc = GrpcProxy(
                settings,
                pool=pool,
                comparisons=parts.comparisons,
                evidence=self._evidence,
                secrets=parts.secrets,
                switch=parts.switch,
                lag=parts.lag,
            )
        except DescriptorError as exc:
            raise ConfigError(str(exc)) from None
        await self.grpc.start()

    def reconfigure(self, fresh: Settings) -> None:
        """Swap what a reload changes in the data planes (routes, sampling, rules, methods)."""
        if self.worker is not None:
            self.worker.forwarder.reconfigure(fresh, route_table(fresh))
        if self.grpc is not None:
            self.grpc.reconfigure(fresh)

    async def stop(self) -> None:
        """Stop accepting, drain, close the data planes, then the admin listener."""
        drain_s = self._settings.drain_s
        if self.grpc is not None:
            await self.grpc.stop(drain_s)
        if self.server is not None and self._runner is not None:
            handed_over = self._runner.server
            assert handed_over is not None, "the runner is set up before the server starts"
            # Both servers at once: connections handed to aiohttp's get the same deadline.
            handed_over.pre_shutdown()
            await asyncio.gather(self.server.shutdown(drain_s), handed_over.shutdown(drain_s))
        if self._runner is not None:
            await self._runner.cleanup()
        if self.worker is not None:
            await self.worker.aclose()
        if self.grpc is not None:
            await self.grpc.close()
        if self.admin is not None:
            await self.admin.aclose()


async def serve(
    settings: Settings,
    *,
    reload: Callable[[], Settings] | None = None,
    on_ready: Callable[[Bound], None] | None = None,
    stop: asyncio.Event | None = None,
    pause_flag: SharedFlag | None = None,
    serve_admin: bool = True,
    registry: CollectorRegistry | None = None,
    install_signals: bool = True,
) -> int:
    """Run one proxy process until ``stop`` is set or SIGTERM/SIGINT arrives; returns 0."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    install_log_filter()
    registry = registry if registry is not None else CollectorRegistry()
    evidence, parts = _open_parts(
        settings,
        registry,
        pause_flag=pause_flag,
        controller=serve_admin,
    )
    ownership = parts.ownership
    listeners = _Listeners(settings, parts, evidence)

    def apply(fresh: Settings) -> None:
        listeners.reconfigure(fresh)
        ownership.reload(fresh, controller=serve_admin)

    config = RunningConfig(settings, load=reload, apply=apply)

    def status() -> dict[str, object]:
        current = config.settings
        worker = listeners.worker
        return {
            **config.status(),
            "workers": current.workers,
            "inflight": len(worker.pool) if worker is not None else 0,
            "max_inflight": current.shadow.max_inflight,
            "loop_lag_ms": round(parts.lag.lag_ms, 3),
            "evidence": evidence.stats(),
        }

    handlers: dict[signal.Signals, Callable[[], None]] = {}
    if install_signals:
        handlers = {signal.SIGTERM: stop.set, signal.SIGINT: stop.set, signal.SIGHUP: config.reload}
    housekeeping = TaskPool(3)
    # Before anything listens: a SIGTERM during start-up must stop gracefully too.
    with signal_handlers(loop, handlers):
        try:
            server = await listeners.start_proxy()
            assert listeners.worker is not None
            await listeners.start_grpc(listeners.worker.pool)
            if serve_admin:
                listeners.admin = await start_admin(
                    settings,
                    switch=parts.switch,
                    render_metrics=lambda: render_metrics(registry),
                    status=status,
                    ownership=ownership,
                )
            parts.lag.start()
            housekeeping.spawn(_ticker(evidence, stop), name="evidence-ticker")
            housekeeping.spawn(ownership.follow(stop), name="cutover-follower")
            bound = Bound(
                proxy=HostAddress(*server.address),
                admin=listeners.admin.address if listeners.admin is not None else None,
                grpc=listeners.grpc.address if listeners.grpc is not None else None,
            )
            log.info(
                "shadowproxy listening" if serve_admin else "worker listening",
                proxy=str(bound.proxy),
                scheme=server.scheme,
                admin=str(bound.admin),
                legacy=settings.upstreams.legacy,
                candidate=settings.upstreams.candidate,
            )
            _tune_gc()
            if on_ready is not None:
                on_ready(bound)
            await stop.wait()
            log.info("shutting down", drain_s=settings.drain_s)
        finally:
            stop.set()
            parts.lag.stop()
            await listeners.stop()
            await housekeeping.close(_TICK_S * 2)
            await parts.comparisons.aclose()
            await loop.run_in_executor(None, evidence.close, settings.drain_s)
    log.info("stopped")
    return 0
