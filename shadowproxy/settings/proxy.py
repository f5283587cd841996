"""The settings of the proxy itself: listeners, TLS, client and upstream limits, the shadow path.

What every data plane shares (addresses, the shadow path's bounds, stream
windows, the admin listener) and the HTTP upstreams. Pure values, like the
rest of ``shadowproxy.settings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AdminSettings",
    "ClientSettings",
    "HostAddress",
    "LegacySettings",
    "ListenTLS",
    "ShadowSettings",
    "StreamSettings",
    "UpstreamSettings",
    "UpstreamTLS",
]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HostAddress:
    """A ``HOST:PORT`` listen address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """Files for TLS to https upstreams; None means the default (system trust, no certificate)."""

    ca_file: str | None = None
    """PEM bundle of the CAs trusted instead of the system's."""
    cert_file: str | None = None
    """PEM client certificate (chain) presented when an upstream asks for one."""
    key_file: str | None = None
    """PEM private key of ``cert_file``, unless that file holds it."""


@dataclass(frozen=True, slots=True)
class ListenTLS:
    """The client-facing listener's certificate: it serves HTTPS when this is set."""

    cert_file: str
    """PEM certificate chain the listener presents."""
    key_file: str | None = None
    """PEM private key of ``cert_file``, unless that file holds it."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What every client connection may take of a worker (``clients:``)."""

    header_timeout_s: float = 10.0
    """A request head must arrive whole within this: from accept for a connection's
    first request, from its first byte for a later one."""
    body_timeout_s: float = 30.0
    """Longest silence while a request body arrives (between bytes)."""
    keepalive_timeout_s: float = 75.0
    """A kept-alive connection idle this long is closed."""
    address_share_percent: float = 50.0
    """The share of ``max_client_connections`` one client address may hold."""

    def address_limit(self, max_connections: int) -> int:
        """Connections one client address may hold open (at least one)."""
        return max(1, int(max_connections * self.address_share_percent / 100))


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """Base URLs of the HTTP backends. ``host_header`` says which Host they receive."""

    legacy: str
    candidate: str
    secondary: str | None = None
    host_header: Literal["client", "upstream"] = "client"


@dataclass(frozen=True, slots=True)
class LegacySettings:
    """The hot path's own limits."""

    connect_timeout_s: float = 5.0
    timeout_s: float = 30.0
    max_connections: int = 0
    """Pool size for legacy; 0 means unlimited (legacy is production's path)."""


@dataclass(frozen=True, slots=True)
class ShadowSettings:
    """Bounds and defaults of the shadow path."""

    sample_percent: float = 100.0
    max_inflight: int = 256
    timeout_s: float = 5.0
    connect_timeout_s: float = 1.0
    max_connections: int = 64
    """Pool size per shadow upstream: a stuck candidate cannot open more."""
    compare_max_bytes: int = MiB
    inline_compare_max_bytes: int = 32 * 1024
    """Uncompressed bodies up to this size compare on the event loop; others in a worker process."""
    mirror_max_body: int = MiB
    grace_s: float = 2.0
    """On shutdown, how long shadow work may finish before it is cancelled."""
    max_loop_lag_ms: float = 50.0
    """Shed new shadow work (skip reason ``overload``) while the event loop lags more."""
    max_streams: int = 16
    """Shadow streams (SSE copies, WebSocket shadows) at once; more skip as ``streams_full``."""
    dry_run_header: str = "X-Shadow-Dry-Run"
    """The header a write's copy carries on a ``mirror_writes: dry_run`` route (docs/writes.md)."""
    dry_run_value: str = "1"
    """Its value: the candidate validates and answers, and commits nothing."""


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """A stream's comparison window: the first ``max_events`` events or ``max_seconds``.

    Legacy's window closes at whichever bound comes first (or ``max_bytes``);
    the copy is read ``grace_s`` longer, to twice the events and bytes, so an
    event it sends a little late is still seen (docs/streams.md).
    """

    max_events: int = 100
    max_seconds: float = 10.0
    max_bytes: int = 256 * 1024
    grace_s: float = 1.0


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """The admin listener; every state-changing call needs ``token`` when one is set."""

    listen: HostAddress = HostAddress("127.0.0.1", 9901)
    token: str | None = field(default=None, repr=False)
    allow_unauthenticated_loopback: bool = False
    """Without a token, a loopback listener takes state-changing calls instead of refusing them."""

    @property
    def token_bytes(self) -> bytes | None:
        """The token as the bytes a client sends (UTF-8; an undecodable environment byte as is)."""
        return self.token.encode("utf-8", "surrogateescape") if self.token else None
