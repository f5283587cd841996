"""The settings of the gRPC and NATS data planes: their listeners, upstreams and methods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shadowproxy.compare.rules import CompareRules
from shadowproxy.settings.proxy import HostAddress, MiB, StreamSettings
from shadowproxy.settings.routes import RouteMode

__all__ = [
    "GrpcCardinality",
    "GrpcMethodSpec",
    "GrpcSettings",
    "NatsEventSpec",
    "NatsRequestSpec",
    "NatsServer",
    "NatsSettings",
]

GrpcCardinality = Literal["unary_unary", "unary_stream", "stream_unary", "stream_stream"]
"""How many messages each side of a gRPC method sends (request first)."""


@dataclass(frozen=True, slots=True)
class GrpcMethodSpec:
    """One configured gRPC method (``/package.Service/Method``)."""

    method: str
    domain: str
    mirror: bool | None
    """True or False as configured; None lets the read-only name rule decide."""
    sample_percent: float
    rules: CompareRules
    cardinality: GrpcCardinality | None = None
    """Overrides the descriptors (or the unary default when there are none)."""
    window: StreamSettings | None = None
    """A server-streaming method's comparison window (``stream:``); None: ``streams:``'s."""
    mode: RouteMode | None = None
    """Who answers it (docs/cutover.md); None follows ``cutover.default_mode``."""
    canary_percent: float = 0.0
    sticky: str = "client"
    """Canary assignment key: ``client`` (the peer's address) or ``metadata:NAME``."""
    canary_allow: tuple[str, ...] = ()
    fallback: bool = True
    """Retry a read on legacy when the candidate answering it fails before answering."""

    @property
    def name(self) -> str:
        """The route of its evidence and ownership: the method, or ``/package.Service/*``."""
        return self.method


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    """The gRPC listener and its upstreams (``HOST:PORT`` targets, HTTP/2, TLS when ``tls``)."""

    listen: HostAddress
    legacy: str
    candidate: str
    secondary: str | None = None
    descriptors: str | None = None
    """A ``protoc --descriptor_set_out`` file; without it, messages compare as bytes."""
    methods: tuple[GrpcMethodSpec, ...] = ()
    domain: str = "default"
    """Domain of methods that are not configured."""
    timeout_s: float = 30.0
    """Bound on a unary legacy call whose client sent no deadline."""
    tls: bool = False
    """Call the upstreams over TLS, with ``upstreams.tls``'s CAs and client certificate."""


@dataclass(frozen=True, slots=True)
class NatsServer:
    """One NATS connection: its server URLs and credentials (secrets stay in the environment)."""

    urls: tuple[str, ...]
    user: str | None = None
    password_env: str | None = None
    """The environment variable holding the password (its name, never the value)."""
    token_env: str | None = None
    """The environment variable holding the token (its name, never the value)."""
    creds_file: str | None = None
    """A NATS credentials file (user JWT and NKey seed), read at connect."""


@dataclass(frozen=True, slots=True)
class NatsRequestSpec:
    """A request/reply subject served in the queue group, forwarded to legacy, mirrored."""

    subject: str
    """The subject requesters use; the route of its evidence."""
    legacy: str
    """Where legacy serves it (on the legacy server)."""
    candidate: str
    """Where the candidate serves it (on the candidate server)."""
    domain: str
    mirror: bool
    """A request may write: it is mirrored only when configured so."""
    sample_percent: float
    rules: CompareRules
    timeout_s: float
    """How long legacy may take to reply."""
    secondary: str | None = None


@dataclass(frozen=True, slots=True)
class NatsEventSpec:
    """An event subject of legacy's and its candidate counterpart, matched by correlation key."""

    subject: str
    """The route of its evidence."""
    legacy: str
    candidate: str
    domain: str
    correlation: str
    """JSONPath of the correlation key in each event's JSON payload (``$.correlation_id``)."""
    rules: CompareRules
    window_s: float = 5.0
    """A pair whose second event comes within this is on time."""
    late_s: float = 5.0
    """After the window, how long an event still waits for its pair (then: late)."""
    max_pending: int = 10_000
    """Events waiting for their pair; beyond it the oldest is dropped and counted."""
    max_bytes: int = 64 * MiB
    """Payload bytes of the events waiting, in all; beyond it the oldest is dropped and counted."""


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """NATS shadowing: the servers, the request subjects and the event subjects."""

    server: NatsServer
    """Where requesters send requests (the proxy serves them there)."""
    legacy_server: NatsServer
    candidate_server: NatsServer
    requests: tuple[NatsRequestSpec, ...] = ()
    events: tuple[NatsEventSpec, ...] = ()
    queue: str = "shadowproxy"
    """The queue group the proxy's replicas (and workers) serve request subjects in."""
    max_pending: int = 1000
    """Messages one subscription may hold unprocessed; more are dropped and counted."""
    max_inflight: int = 256
    """Requests forwarded to legacy at once; more wait in the subscription's pending messages."""
