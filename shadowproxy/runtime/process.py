"""What every shadowproxy process runs beside its data plane: reload, status, admin, signals.

One process (``serve``) and the supervisor of ``--workers N``
(``supervisor``) share it. ``RunningConfig`` holds the configuration in
force and applies SIGHUP: an invalid file is logged, counted and the running
configuration kept; what a reload cannot change is named in
``restart_needed`` (``shadowproxy.config.reloaded``). It also gives the part of
``/status`` every process shows. ``start_admin`` binds the admin listener, and
``signal_handlers`` installs the signal handlers for as long as the process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import structlog
from aiohttp import web

from shadowproxy.admin.app import AdminContext, build_admin_app
from shadowproxy.config import ConfigError, reloaded
from shadowproxy.cutover.ownership import Ownership
from shadowproxy.settings import GrpcSettings, HostAddress, Settings, UpstreamSettings
from shadowproxy.shadow.control import ShadowSwitch

__all__ = [
    "AdminListener",
    "RunningConfig",
    "bound_address",
    "legacy_targets",
    "signal_handlers",
    "start_admin",
]

log = structlog.get_logger(__name__)


class RunningConfig:
    """The configuration in force, what SIGHUP makes of it, and what ``/status`` shows of it."""

    def __init__(
        self,
        settings: Settings,
        *,
        load: Callable[[], Settings] | None,
        apply: Callable[[Settings], None],
    ) -> None:
        self.settings = settings
        self._load = load
        self._apply = apply
        self._reloads = {"applied": 0, "rejected": 0}
        self._restart_needed: tuple[str, ...] = ()

    def reload(self) -> None:
        """Read the file again and apply what a reload may change (the SIGHUP handler)."""
        if self._load is None:
            return
        try:
            fresh, restart_needed = reloaded(self.settings, self._load())
        except ConfigError as exc:
            self._reloads["rejected"] += 1
            log.error("reload rejected; keeping the running configuration", error=str(exc))
            return
        self._apply(fresh)
        self.settings, self._restart_needed = fresh, restart_needed
        self._reloads["applied"] += 1
        log.info("configuration reloaded", digest=fresh.digest, routes=len(fresh.routes))
        if restart_needed:
            log.warning("reload left these keys for a restart", keys=list(restart_needed))

    def status(self) -> dict[str, object]:
        """The part of ``/status`` every process shows (docs/proxy.md)."""
        current = self.settings
        return {
            "config_digest": current.digest,
            "config_source": current.source,
            "reloads": dict(self._reloads),
            "restart_needed": list(self._restart_needed),
            "upstreams": _sides(current.upstreams),
            **({} if current.grpc is None else {"grpc_upstreams": _sides(current.grpc)}),
        }


def _sides(upstreams: UpstreamSettings | GrpcSettings | None) -> dict[str, str | None] | None:
    """Legacy, candidate and secondary of one data plane, as ``/status`` shows them."""
    if upstreams is None:
        return None
    return {
        "legacy": upstreams.legacy,
        "candidate": upstreams.candidate,
        "secondary": upstreams.secondary,
    }


def legacy_targets(settings: Settings) -> dict[str, str]:
    """Where each configured data plane's legacy listens, as URLs (``/readyz`` probes them)."""
    targets: dict[str, str] = {}
    if settings.upstreams is not None:
        targets["http"] = settings.upstreams.legacy
    if settings.grpc is not None:
        targets["grpc"] = f"grpc://{settings.grpc.legacy}"
    if settings.nats is not None:
        targets["nats"] = settings.nats.legacy_server.urls[0]
    return targets


def bound_address(runner: web.AppRunner) -> HostAddress:
    """The address an aiohttp runner's first site bound (its port resolved when 0 was asked)."""
    host, port = runner.addresses[0][:2]
    return HostAddress(str(host), int(port))


@dataclass(frozen=True, slots=True)
class AdminListener:
    """The running admin listener and the address it bound."""

    runner: web.AppRunner
    address: HostAddress

    async def aclose(self) -> None:
        """Stop listening and close the admin application."""
        await self.runner.cleanup()


async def start_admin(
    settings: Settings,
    *,
    switch: ShadowSwitch,
    render_metrics: Callable[[], tuple[bytes, str]],
    status: Callable[[], Mapping[str, object]],
    ownership: Ownership,
) -> AdminListener:
    """Bind the admin listener; its state-changing calls need the token (docs/proxy.md)."""
    admin = settings.admin
    if admin.token is None and not admin.allow_unauthenticated_loopback:
        log.warning("admin writes are off: no admin token is set", admin=str(admin.listen))
    runner = web.AppRunner(
        build_admin_app(
            AdminContext(
                switch=switch,
                render_metrics=render_metrics,
                status=status,
                cutover=ownership,
                legacy=legacy_targets(settings),
                token=admin.token_bytes,
                open_without_token=admin.allow_unauthenticated_loopback,
            )
        ),
        handle_signals=False,
        access_log=None,
    )
    await runner.setup()
    await web.TCPSite(runner, admin.listen.host, admin.listen.port).start()
    return AdminListener(runner, bound_address(runner))


@contextlib.contextmanager
def signal_handlers(
    loop: asyncio.AbstractEventLoop, handlers: Mapping[signal.Signals, Callable[[], None]]
) -> Iterator[None]:
    """Install ``handlers`` on ``loop`` for the block (where the platform has them)."""
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
