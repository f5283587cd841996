"""``Settings``: the whole validated configuration, one frozen value."""

from __future__ import annotations

from dataclasses import dataclass

from shadowproxy.compare.rules import CompareRules
from shadowproxy.settings.edges import GrpcMethodSpec, GrpcSettings, NatsSettings
from shadowproxy.settings.evidence import CaptureSettings, EvidenceSettings, RedactSettings
from shadowproxy.settings.proxy import (
    AdminSettings,
    ClientSettings,
    HostAddress,
    LegacySettings,
    ListenTLS,
    ShadowSettings,
    StreamSettings,
    UpstreamSettings,
    UpstreamTLS,
)
from shadowproxy.settings.routes import CutoverSettings, IdentitySettings, RouteSpec

__all__ = [
    "Settings",
]


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole validated configuration."""

    upstreams: UpstreamSettings | None = None
    """The HTTP upstreams; None when only gRPC or NATS is shadowed: no HTTP listener then."""
    upstream_tls: UpstreamTLS = UpstreamTLS()
    """``upstreams.tls``: the CAs and client certificate of every upstream, HTTP or gRPC."""
    listen: HostAddress = HostAddress("127.0.0.1", 8080)
    listen_tls: ListenTLS | None = None
    """HTTPS on the client-facing listener; None serves plain HTTP."""
    admin: AdminSettings = AdminSettings()
    legacy: LegacySettings = LegacySettings()
    shadow: ShadowSettings = ShadowSettings()
    compare: CompareRules = CompareRules()
    """Global comparison rules; routes inherit and override them."""
    streams: StreamSettings = StreamSettings()
    """The default stream window; routes inherit and override it."""
    routes: tuple[RouteSpec, ...] = ()
    max_routes: int = 100
    """Route names learned from traffic per table (HTTP paths, gRPC methods); later ones
    are ``other``. Configured routes (and gRPC methods the configuration or the
    descriptors know) are never counted here, so learned ones cannot displace them."""
    max_client_connections: int = 10_000
    """Client connections one worker keeps open; more are closed on arrival and counted."""
    clients: ClientSettings = ClientSettings()
    evidence: EvidenceSettings = EvidenceSettings()
    redact: RedactSettings = RedactSettings()
    drain_s: float = 10.0
    workers: int = 1
    source: str = "<flags>"
    """Where the settings came from (a file path, or ``<flags>``), for messages."""
    digest: str = ""
    """sha256 of the effective configuration, shown on ``/status``."""
    grpc: GrpcSettings | None = None
    """The gRPC listener; None when it is off."""
    nats: NatsSettings | None = None
    """NATS shadowing; None when it is off."""
    cutover: CutoverSettings = CutoverSettings()
    identity: IdentitySettings = IdentitySettings()
    capture: CaptureSettings = CaptureSettings()

    @property
    def owned(self) -> tuple[RouteSpec | GrpcMethodSpec, ...]:
        """Every configured route cutover governs: HTTP routes, then gRPC methods and services."""
        return (*self.routes, *(() if self.grpc is None else self.grpc.methods))
