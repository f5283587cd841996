"""``--workers N``: N proxy processes sharing the listen port, one admin listener over all.

The supervisor starts N spawned worker processes, each binding the proxy port
with SO_REUSEPORT so the kernel spreads connections across cores (a port 0
is picked here and held, bound but not listening, for as long as the
supervisor runs, so no other listener can take it). It serves
the admin listener itself: metrics are summed over workers through
prometheus_client's multiprocess mode, and the kill switch is one byte of
shared memory every worker reads. SIGTERM/SIGINT and SIGHUP are forwarded to
the workers; a new configuration is validated here first, so a bad one never
reaches them. A worker that dies unexpectedly is restarted. Route ownership
(docs/cutover.md) is a state file in a private directory created here: the
admin API changes it, any worker may roll a route back in it, and every
worker polls it, so a change reaches all of them within a second. The
supervisor writes the ``ownership`` records of the changes it makes to its
own evidence file.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
from dataclasses import replace
from multiprocessing.process import BaseProcess

import structlog

from shadowproxy.config import Overrides, load_settings
from shadowproxy.runtime.process import RunningConfig, signal_handlers, start_admin
from shadowproxy.settings import HostAddress, Settings
from shadowproxy.shadow.control import ShadowSwitch, SharedFlag

__all__ = ["supervise"]

log = structlog.get_logger(__name__)

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_RESTART_BACKOFF_S = 1.0
_START_TIMEOUT_S = 30.0


def _load(config_path: str | None, overrides: Overrides, running: Settings) -> Settings:
    """The configuration again for a reload, on the ports picked at start for ``:0``."""
    fresh = load_settings(config_path, overrides)
    if fresh.listen.port == 0:
        fresh = replace(fresh, listen=replace(fresh.listen, port=running.listen.port))
    grpc = fresh.grpc
    if grpc is not None and running.grpc is not None and grpc.listen.port == 0:
        listen = replace(grpc.listen, port=running.grpc.listen.port)
        fresh = replace(fresh, grpc=replace(grpc, listen=listen))
    return fresh


def _worker_main(
    settings: Settings,
    config_path: str | None,
    overrides: Overrides,
    flag: SharedFlag,
    ready: SharedFlag,
    log_json: bool | None,
    first: bool,
) -> None:
    """Entry point of one worker process; ``ready`` turns 1 once it listens.

    The ``first`` worker also matches the NATS event subjects.
    """
    from shadowproxy.runtime.serve import serve
    from shadowproxy.runtime.start import prepare_process
    from shadowproxy.sinks import configure_logging

    configure_logging(json=log_json)
    prepare_process()
    asyncio.run(
        serve(
            settings,
            reload=lambda: _load(config_path, overrides, settings),
            pause_flag=flag,
            serve_admin=False,
            on_ready=lambda _: setattr(ready, "value", 1),
            nats_events=first,
        )
    )


class _Fleet:
    """The worker processes and what they share."""

    def __init__(
        self,
        settings: Settings,
        config_path: str | None,
        overrides: Overrides,
        log_json: bool | None,
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self.flag: SharedFlag = self._context.RawValue("b", 0)
        self.settings = settings
        self._args = (config_path, overrides, log_json)
        self.workers: list[BaseProcess] = []
        self.ready: list[SharedFlag] = []
        self.stopping = False

    def _spawn(self, slot: int) -> BaseProcess:
        config_path, overrides, log_json = self._args
        self.ready[slot].value = 0
        process = self._context.Process(
            target=_worker_main,
            args=(
                self.settings,
                config_path,
                overrides,
                self.flag,
                self.ready[slot],
                log_json,
                slot == 0,
            ),
            name=f"shadowproxy-worker-{slot}",
        )
        process.start()
        return process

    def start(self) -> None:
        self.ready = [self._context.RawValue("b", 0) for _ in range(self.settings.workers)]
        self.workers = [self._spawn(slot) for slot in range(self.settings.workers)]

    def ready_count(self) -> int:
        """Workers alive and listening."""
        return sum(
            1 for p, r in zip(self.workers, self.ready, strict=True) if r.value and p.is_alive()
        )

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until every worker listens; False when one died first or time ran out."""
        async with asyncio.timeout(timeout_s):
            while self.ready_count() < len(self.workers):
                if any(not p.is_alive() for p in self.workers):
                    return False
                await asyncio.sleep(0.05)
        return True

    def signal_all(self, sig: signal.Signals) -> None:
        for process in self.workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, sig)

    def replace_dead(self) -> None:
        """Restart workers that exited while the fleet is not stopping."""
        from shadowproxy.sinks import mark_worker_dead

        for index, process in enumerate(self.workers):
            if process.is_alive() or self.stopping:
                continue
            if process.pid is not None:
                mark_worker_dead(process.pid)
            log.error("worker exited; restarting", pid=process.pid, exitcode=process.exitcode)
            self.workers[index] = self._spawn(index)

    def join(self, timeout_s: float) -> bool:
        """Wait for every worker; True when all exited cleanly."""
        clean = True
        for process in self.workers:
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
                process.join()
                clean = False
            clean = clean and process.exitcode == 0
        return clean


async def _supervise(fleet: _Fleet, config_path: str | None, overrides: Overrides) -> int:
    from prometheus_client import CollectorRegistry

    from shadowproxy.cutover.ownership import Ownership
    from shadowproxy.sinks import (
        Evidence,
        Metrics,
        default_worker_id,
        multiprocess_registry,
        render_metrics,
    )

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    settings = fleet.settings
    records = Evidence(settings, Metrics(CollectorRegistry()), worker_id=default_worker_id())
    records.start()
    ownership = Ownership(settings, records)
    ownership.start(controller=True)

    def apply(fresh: Settings) -> None:
        # Workers started from now on (a replacement for one that died) get it too.
        fleet.settings = fresh
        ownership.reload(fresh, controller=True)
        fleet.signal_all(signal.SIGHUP)

    config = RunningConfig(
        settings, load=lambda: _load(config_path, overrides, settings), apply=apply
    )

    def status() -> dict[str, object]:
        return {
            **config.status(),
            "workers": len(fleet.workers),
            "workers_ready": fleet.ready_count(),
            "worker_pids": [p.pid for p in fleet.workers if p.is_alive()],
        }

    admin = await start_admin(
        settings,
        switch=ShadowSwitch(fleet.flag),
        render_metrics=lambda: render_metrics(multiprocess_registry()),
        status=status,
        ownership=ownership,
    )
    fleet.start()
    handlers = {signal.SIGTERM: stop.set, signal.SIGINT: stop.set, signal.SIGHUP: config.reload}
    with signal_handlers(loop, handlers):
        started = False
        with contextlib.suppress(TimeoutError):
            started = await fleet.wait_ready(_START_TIMEOUT_S)
        if not started:
            log.error("workers failed to start; stopping")
            stop.set()
        else:
            log.info(
                "shadowproxy listening",
                proxy=None if settings.upstreams is None else str(settings.listen),
                scheme="http" if settings.listen_tls is None else "https",
                admin=str(admin.address),
                grpc=None if settings.grpc is None else str(settings.grpc.listen),
                workers=settings.workers,
            )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _RESTART_BACKOFF_S)
            fleet.replace_dead()
        fleet.stopping = True
        fleet.signal_all(signal.SIGTERM)
        grace = settings.drain_s + settings.shadow.grace_s + 5
        clean = await loop.run_in_executor(None, fleet.join, grace)
        await admin.aclose()
        await loop.run_in_executor(None, records.close, settings.drain_s)
    return 0 if clean and started else 1


def _hold_port(host: str) -> socket.socket:
    """A socket bound with SO_REUSEPORT to a fresh port of ``host`` that never listens.

    While it is open nobody else can take the port (not even this process's
    own admin listener, binding port 0 after it), yet every worker can listen
    on it with SO_REUSEPORT; a port picked and released could be given to
    another listener before the workers bind it.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


def _hold_ports(settings: Settings, held: list[socket.socket]) -> Settings:
    """``settings`` with a fresh port, held in ``held``, where the workers' listeners ask for 0."""

    def hold(address: HostAddress) -> HostAddress:
        if address.port != 0:
            return address
        held.append(_hold_port(address.host))
        return replace(address, port=int(held[-1].getsockname()[1]))

    if settings.upstreams is not None:
        settings = replace(settings, listen=hold(settings.listen))
    if settings.grpc is not None:
        settings = replace(settings, grpc=replace(settings.grpc, listen=hold(settings.grpc.listen)))
    return settings


def supervise(
    settings: Settings,
    *,
    config_path: str | None,
    overrides: Overrides,
    log_json: bool | None = None,
) -> int:
    """Run ``settings.workers`` worker processes until SIGTERM/SIGINT; returns the exit code."""
    held: list[socket.socket] = []
    metrics_dir = tempfile.mkdtemp(prefix="shadowproxy-metrics-")
    # Set before any worker starts: prometheus_client picks its value store at import.
    os.environ[_MULTIPROC_ENV] = metrics_dir
    try:
        # Every worker must bind the same ports; ephemeral ones are picked here
        # once and held until the supervisor exits (a restarted worker binds them again).
        settings = _hold_ports(settings, held)
        fleet = _Fleet(settings, config_path, overrides, log_json)
        return asyncio.run(_supervise(fleet, config_path, overrides))
    finally:
        for sock in held:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
