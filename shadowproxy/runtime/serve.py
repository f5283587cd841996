"""Running one proxy process: evidence, listeners, signals, reload and graceful stop.

``serve`` reads top to bottom: the evidence and the pieces the listeners share
(``_open_parts``), the data planes that are configured (HTTP, gRPC) and the
admin listener (``listeners.Listeners.start``), the housekeeping tasks, then
the wait for SIGTERM/SIGINT or ``stop``. Stop order (``Listeners.stop``): stop
accepting, drain in-flight client requests (up to ``drain_s``), give shadow
work ``shadow.grace_s`` then cancel it, close the upstream connections, stop
the admin listener; then flush and close the evidence. SIGHUP re-reads the
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

import structlog
from prometheus_client import CollectorRegistry

from shadowproxy.cutover.ownership import Ownership
from shadowproxy.http.handover import install_log_filter
from shadowproxy.runtime.listeners import Bound, Listeners
from shadowproxy.runtime.process import (
    RunningConfig,
    legacy_targets,
    signal_handlers,
    start_admin,
)
from shadowproxy.runtime.worker import ProxyParts
from shadowproxy.settings import Settings
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.control import LagMonitor, ShadowSwitch, SharedFlag
from shadowproxy.shadow.streams import StreamSlots
from shadowproxy.shadow.tasks import TaskPool
from shadowproxy.sinks import Evidence, Metrics, default_worker_id, render_metrics
from shadowproxy.sinks.capture import Capture

__all__ = ["Bound", "serve"]

log = structlog.get_logger(__name__)

_TICK_S = 1.0


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
    if settings.nats is not None:
        nats = settings.nats
        subjects = [(spec.subject, spec.domain) for spec in nats.requests]
        subjects += [(spec.subject, spec.domain) for spec in nats.events]
        metrics.prime_routes(subjects)
        metrics.prime_nats((subject for subject, _ in subjects), (s.subject for s in nats.events))
    evidence = Evidence(settings, metrics, worker_id=default_worker_id())
    evidence.start()
    ownership = Ownership(settings, evidence)
    ownership.start(controller=controller)
    capture = Capture(settings.capture, evidence.redactor, default_worker_id())
    capture.start()
    return evidence, ProxyParts(
        sink=evidence,
        switch=ShadowSwitch(pause_flag),
        lag=LagMonitor(),
        comparisons=Comparisons(settings.shadow.inline_compare_max_bytes),
        secrets=evidence.redactor.finder,
        ownership=ownership,
        pool=TaskPool(settings.shadow.max_inflight, on_change=evidence.set_inflight),
        streams=StreamSlots(settings.shadow.max_streams),
        capture=capture,
    )


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
    nats_events: bool = True,
) -> int:
    """Run one proxy process until ``stop`` is set or SIGTERM/SIGINT arrives; returns 0.

    ``nats_events``: this process matches the NATS event subjects (with
    ``--workers N`` only the first worker does: a pair must meet in one process).
    """
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
    listeners = Listeners(settings, parts, evidence, nats_events=nats_events)

    def apply(fresh: Settings) -> None:
        listeners.reconfigure(fresh)
        ownership.reload(fresh, controller=serve_admin)

    config = RunningConfig(settings, load=reload, apply=apply)

    def status() -> dict[str, object]:
        current = config.settings
        return {
            **config.status(),
            "workers": current.workers,
            "inflight": len(parts.pool),
            "max_inflight": current.shadow.max_inflight,
            "loop_lag_ms": round(parts.lag.lag_ms, 3),
            "evidence": evidence.stats(),
            "capture": parts.capture.stats() if parts.capture is not None else None,
        }

    handlers: dict[signal.Signals, Callable[[], None]] = {}
    if install_signals:
        handlers = {signal.SIGTERM: stop.set, signal.SIGINT: stop.set, signal.SIGHUP: config.reload}
    housekeeping = TaskPool(3)
    # Before anything listens: a SIGTERM during start-up must stop gracefully too.
    with signal_handlers(loop, handlers):
        try:
            bound = await listeners.start(
                (
                    lambda: start_admin(
                        settings,
                        switch=parts.switch,
                        render_metrics=lambda: render_metrics(registry),
                        status=status,
                        ownership=ownership,
                    )
                )
                if serve_admin
                else None
            )
            parts.lag.start()
            housekeeping.spawn(_ticker(evidence, stop), name="evidence-ticker")
            housekeeping.spawn(ownership.follow(stop), name="cutover-follower")
            log.info(
                "shadowproxy listening" if serve_admin else "worker listening",
                proxy=None if bound.proxy is None else str(bound.proxy),
                scheme=bound.scheme,
                admin=str(bound.admin),
                grpc=None if bound.grpc is None else str(bound.grpc),
                legacy=legacy_targets(settings),
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
            if parts.capture is not None:
                await loop.run_in_executor(None, parts.capture.close, settings.drain_s)
            await loop.run_in_executor(None, evidence.close, settings.drain_s)
    log.info("stopped")
    return 0
