"""Running one proxy process: listeners, evidence, signals, reload and graceful stop.

Start-up order: evidence writer, proxy listener, admin listener. Stop order
on SIGTERM/SIGINT: stop accepting, drain in-flight client requests (up to
``drain_s``), give shadow work ``shadow.grace_s`` then cancel it, close the
upstream sessions, stop the admin listener, flush and close the evidence.
SIGHUP re-reads the configuration; an invalid one is logged and the running
one kept. Route ownership (docs/cutover.md) lives in memory, or, for a
supervisor's workers, in the state file under ``cutover_state_dir`` that
each worker polls; the process serving the admin listener applies the
modes a reload changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from shadowproxy.admin.app import AdminContext, build_admin_app
from shadowproxy.config import ConfigError, is_loopback, reloaded
from shadowproxy.cutover.ownership import Ownership
from shadowproxy.http.handover import handover_app, install_log_filter
from shadowproxy.http.server import Server
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


def _bound(runner: web.AppRunner) -> HostAddress:
    host, port = runner.addresses[0][:2]
    return HostAddress(str(host), int(port))


async def _drain(server: Server, runner: web.AppRunner, timeout_s: float) -> None:
    """Drain both servers at once: connections handed to aiohttp's get the same deadline."""
    handed_over = runner.server
    assert handed_over is not None, "the runner is set up before the server starts"
    handed_over.pre_shutdown()
    await asyncio.gather(server.shutdown(timeout_s), handed_over.shutdown(timeout_s))


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


@contextlib.contextmanager
def _signals(
    loop: asyncio.AbstractEventLoop, handlers: Mapping[signal.Signals, Callable[[], None]]
) -> Iterator[None]:
    installed = []
    try:
        for sig, handler in handlers.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, handler)
                installed.append(sig)
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def serve(
    settings: Settings,
    *,
    reload: Callable[[], Settings] | None = None,
    on_ready: Callable[[Bound], None] | None = None,
    stop: asyncio.Event | None = None,
    pause_flag: SharedFlag | None = None,
    cutover_state_dir: str | None = None,
    serve_admin: bool = True,
    registry: CollectorRegistry | None = None,
    install_signals: bool = True,
) -> int:
    """Run one proxy process until ``stop`` is set or SIGTERM/SIGINT arrives; returns 0."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    install_log_filter()
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry)
    metrics.prime_routes((spec.name, spec.domain) for spec in settings.routes)
    evidence = Evidence(settings, metrics, worker_id=default_worker_id())
    evidence.start()
    switch = ShadowSwitch(pause_flag)
    lag = LagMonitor()
    ownership = Ownership(settings, evidence, state_dir=cutover_state_dir)
    if serve_admin:
        ownership.publish()
    else:
        ownership.refresh()
    parts = ProxyParts(
        sink=evidence,
        switch=switch,
        lag=lag,
        comparisons=Comparisons(settings.shadow.inline_compare_max_bytes),
        ownership=ownership,
    )
    worker: Worker | None = None
    runner: web.AppRunner | None = None
    server: Server | None = None
    admin_runner: web.AppRunner | None = None
    grpc_proxy: GrpcProxy | None = None
    housekeeping = TaskPool(3)
    current = settings
    reloads = {"applied": 0, "rejected": 0}
    restart_needed: tuple[str, ...] = ()

    def reload_config() -> None:
        nonlocal current, restart_needed
        if reload is None:
            return
        try:
            fresh, restart_needed = reloaded(current, reload())
        except ConfigError as exc:
            reloads["rejected"] += 1
            log.error("reload rejected; keeping the running configuration", error=str(exc))
            return
        if worker is not None:
            worker.forwarder.reconfigure(fresh, route_table(fresh))
        ownership.reload(fresh, controller=serve_admin)
        if grpc_proxy is not None:
            grpc_proxy.reconfigure(fresh)
        current = fresh
        reloads["applied"] += 1
        log.info("configuration reloaded", digest=fresh.digest, routes=len(fresh.routes))
        if restart_needed:
            log.warning("reload left these keys for a restart", keys=list(restart_needed))

    def status() -> dict[str, Any]:
        return {
            "config_digest": current.digest,
            "config_source": current.source,
            "reloads": dict(reloads),
            "restart_needed": list(restart_needed),
            "upstreams": {
                "legacy": current.upstreams.legacy,
                "candidate": current.upstreams.candidate,
                "secondary": current.upstreams.secondary,
            },
            "workers": current.workers,
            "inflight": len(worker.pool) if worker is not None else 0,
            "max_inflight": current.shadow.max_inflight,
            "loop_lag_ms": round(lag.lag_ms, 3),
            "evidence": evidence.stats(),
        }

    handlers: dict[signal.Signals, Callable[[], None]] = {}
    if install_signals:
        handlers = {signal.SIGTERM: stop.set, signal.SIGINT: stop.set, signal.SIGHUP: reload_config}
    signals = contextlib.ExitStack()
    try:
        # Before anything listens: a SIGTERM during start-up must stop gracefully too.
        signals.enter_context(_signals(loop, handlers))
        worker = build_worker(settings, parts)
        # aiohttp's server takes only the connections the lean server hands over;
        # it listens nowhere.
        runner = web.AppRunner(
            handover_app(worker.forwarder, worker.tunnel),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=settings.drain_s,
        )
        await runner.setup()
        handed_over = runner.server
        assert handed_over is not None
        server = Server(
            worker.forwarder.handle,
            handed_over,
            max_connections=settings.max_client_connections,
            elsewhere=lambda: len(handed_over.connections),
            refused=evidence.on_connection_refused,
        )
        await server.start(
            settings.listen.host,
            settings.listen.port,
            reuse_port=settings.workers > 1,
            backlog=1024,
            tls=None if settings.listen_tls is None else server_context(settings.listen_tls),
        )
        if settings.grpc is not None:
            from shadowproxy.grpcproxy import DescriptorError, GrpcProxy

            try:
                grpc_proxy = GrpcProxy(
                    settings,
                    pool=worker.pool,
                    comparisons=parts.comparisons,
                    evidence=evidence,
                    switch=switch,
                    lag=lag,
                )
            except DescriptorError as exc:
                raise ConfigError(str(exc)) from None
            await grpc_proxy.start()
        admin_address: HostAddress | None = None
        if serve_admin:
            admin_runner = web.AppRunner(
                build_admin_app(
                    AdminContext(
                        switch=switch,
                        render_metrics=lambda: render_metrics(registry),
                        status=status,
                        cutover=ownership,
                        legacy_url=settings.upstreams.legacy,
                        token=settings.admin.token,
                        require_token=not is_loopback(settings.admin.listen.host),
                    )
                ),
                handle_signals=False,
                access_log=None,
            )
            await admin_runner.setup()
            await web.TCPSite(
                admin_runner, settings.admin.listen.host, settings.admin.listen.port
            ).start()
            admin_address = _bound(admin_runner)
        lag.start()
        housekeeping.spawn(_ticker(evidence, stop), name="evidence-ticker")
        if cutover_state_dir is not None:
            housekeeping.spawn(ownership.follow(stop), name="cutover-follower")
        bound = Bound(
            proxy=HostAddress(*server.address),
            admin=admin_address,
            grpc=grpc_proxy.address if grpc_proxy is not None else None,
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
        lag.stop()
        if grpc_proxy is not None:
            await grpc_proxy.stop(settings.drain_s)
        if server is not None and runner is not None:
            await _drain(server, runner, settings.drain_s)
        if runner is not None:
            await runner.cleanup()
        if worker is not None:
            await worker.aclose()
        if grpc_proxy is not None:
            await grpc_proxy.close()
        if admin_runner is not None:
            await admin_runner.cleanup()
        await housekeeping.close(_TICK_S * 2)
        await parts.comparisons.aclose()
        await loop.run_in_executor(None, evidence.close, settings.drain_s)
        signals.close()
    log.info("stopped")
    return 0
