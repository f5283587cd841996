"""The frozen settings value every runtime component receives.

``shadowproxy.config`` builds one ``Settings`` from YAML and flags, validated
once at start; nothing reads configuration from anywhere else. Pure values:
this module imports only the comparison rules and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shadowproxy.compare.rules import CompareRules

__all__ = [
    "MAX_LEARNED_ROUTE",
    "AdminSettings",
    "CaptureSettings",
    "ClientSettings",
    "CutoverSettings",
    "EvidenceSettings",
    "GrpcCardinality",
    "GrpcMethodSpec",
    "GrpcSettings",
    "HostAddress",
    "IdentitySettings",
    "LegacySettings",
    "ListenTLS",
    "NatsEventSpec",
    "NatsRequestSpec",
    "NatsServer",
    "NatsSettings",
    "RedactSettings",
    "RollbackSettings",
    "RouteCapture",
    "RouteIdentity",
    "RouteMode",
    "RouteSpec",
    "RouteStream",
    "Settings",
    "ShadowSettings",
    "StreamSettings",
    "UpstreamSettings",
    "UpstreamTLS",
    "WebSocketMode",
]

MiB = 1024 * 1024
MAX_LEARNED_ROUTE = 128
"""The longest route name learned from traffic (an HTTP path's normalised name, a gRPC
method's full name); a longer one is counted as ``other`` and takes no place in the table."""


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


WebSocketMode = Literal["tunnel", "shadow"]
"""``tunnel``: relayed to the side that answers only; ``shadow``: also copied to the other side."""


@dataclass(frozen=True, slots=True)
class RouteStream:
    """How a route's streams are shadowed (docs/streams.md)."""

    window: StreamSettings = StreamSettings()
    sse: bool = False
    """Every GET is an event stream, whatever its Accept header says."""
    websocket: WebSocketMode = "tunnel"


@dataclass(frozen=True, slots=True)
class RouteIdentity:
    """Where a route's answers create ids and its requests carry them (docs/writes.md)."""

    family: str
    """The ids' family: pairs learned on one route are used on every route of the family."""
    create: tuple[str, ...] = ()
    """JSONPath patterns where both answers hold a created id (``$.id``)."""
    path: tuple[int, ...] = ()
    """Indices of the path segments (``/orders/{id}``: 2) holding a legacy id."""
    query: tuple[str, ...] = ()
    """Query parameters holding a legacy id."""
    body: tuple[str, ...] = ()
    """JSONPath patterns of a JSON request body holding a legacy id."""


@dataclass(frozen=True, slots=True)
class RouteCapture:
    """How many of a route's requests ``shadowproxy run`` captures (docs/replay.md)."""

    percent: float = 0.0
    """Share of the route's requests captured; 0 captures none."""
    per_second: float = 1.0
    """At most this many captured per second and worker (a token bucket)."""


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """The capture file of each worker and its bounds (``capture:``)."""

    dir: str = "./shadow-captures"
    """Where ``capture-<host>-<pid>.jsonl`` files go; never inside ``log_dir``."""
    percent: float = 0.0
    """The routes' ``capture.percent`` unless a route sets its own."""
    per_second: float = 1.0
    """The routes' ``capture.per_second`` unless a route sets its own."""
    max_bytes: int = 256 * MiB
    """The file's size cap: once reached, further captures are dropped and counted."""
    max_body_bytes: int = 64 * 1024
    """Requests with a larger body are not captured (counted)."""
    queue_size: int = 1000
    """Captures waiting for the writer thread; beyond it they are dropped and counted."""


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    """The bound of identity mapping (``identity:``)."""

    max_pairs: int = 10_000
    """Pairs of ids kept per family and worker; the least recently used are forgotten."""


RouteMode = Literal["shadow", "canary", "candidate", "legacy-only"]
"""Who answers a route (docs/cutover.md); ``shadowproxy.cutover.state.Mode`` names them."""


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One configured route: a template (``/orders/{id}``) or a prefix (``/static/*``)."""

    match: str
    name: str
    domain: str
    sample_percent: float
    mirror_writes: bool
    rules: CompareRules
    mode: RouteMode | None = None
    """None follows ``cutover.default_mode``."""
    canary_percent: float = 0.0
    """Share of requests the candidate answers in ``canary`` mode."""
    sticky: str = "client"
    """Canary assignment key: ``client``, ``header:NAME`` or ``cookie:NAME``."""
    canary_allow: tuple[str, ...] = ()
    """Keys (values of the ``sticky`` header or cookie) the candidate answers in ``canary``."""
    methods: frozenset[str] | None = None
    """The request methods this route matches; None matches every method."""
    mirror: bool = True
    """False: never mirrored in any mode (a state-changing read); skip reason ``mirror_off``."""
    fallback: bool = True
    """Retry an idempotent request on legacy when the candidate answering it fails."""
    stream: RouteStream = RouteStream()
    dry_run: bool = False
    """``mirror_writes: dry_run``: a write's copy carries the dry-run header (docs/writes.md)."""
    identity: RouteIdentity | None = None
    """Ids this route's answers create or its requests carry; None: no mapping."""
    capture: RouteCapture = RouteCapture()
    """How many of its requests are captured for replay."""


@dataclass(frozen=True, slots=True)
class RollbackSettings:
    """When a route the candidate answers returns to ``shadow`` by itself."""

    enabled: bool = True
    window_s: float = 60.0
    min_samples: int = 20
    max_structural_rate: float = 0.01
    """Share of candidate-answered exchanges with a structural divergence."""
    max_error_rate: float = 0.05
    """Share of candidate-answered requests with a 5xx or no answer."""
    max_p99_ratio: float = 2.0
    """Candidate p99 over legacy p99, on exchanges where both answered."""


@dataclass(frozen=True, slots=True)
class CutoverSettings:
    """Route ownership defaults, the emergency switch and automatic rollback."""

    default_mode: RouteMode = "shadow"
    force_legacy: bool = False
    """Set from ``SHADOWPROXY_FORCE_LEGACY=1`` at start."""
    rollback: RollbackSettings = RollbackSettings()
    state_dir: str = "./shadow-logs"
    """Where runtime changes are saved and read back at start (``log_dir`` unless set)."""
    fallback: bool = True
    """The routes' ``fallback`` unless a route sets its own."""


@dataclass(frozen=True, slots=True)
class RedactSettings:
    """What never reaches a file, log line or metric."""

    headers: tuple[str, ...] = ()
    """Header names redacted in addition to the built-in list (lower-case)."""
    body_paths: tuple[str, ...] = ()
    """JSONPath patterns whose values are redacted in recorded differences."""
    query_params: tuple[str, ...] = ()
    """Query parameter names redacted in addition to the built-in patterns."""
    keys: tuple[str, ...] = ()
    """JSON, form and header key names redacted in addition to the built-in secret keys."""
    patterns: tuple[str, ...] = ()
    """Regular expressions whose matches are redacted in every recorded string."""
    hash_key: bytes | None = None
    """When set, redacted values become a keyed hash so equality stays visible."""


@dataclass(frozen=True, slots=True)
class EvidenceSettings:
    """The JSONL writer's limits."""

    log_dir: str = "./shadow-logs"
    sample_matches_percent: float = 0.0
    max_value_chars: int = 256
    max_differences: int = 50
    rollup_interval_s: float = 60.0
    rotate_bytes: int = 64 * MiB
    keep_files: int = 10
    max_total_bytes: int = 1024 * MiB
    keep_rollups_days: float = 16.0
    """Rollup files younger than this are never deleted: the longest gate window plus a margin."""
    queue_size: int = 10_000
    include_query: bool = False
    """Record the (redacted) query string in ``path``; off by default."""


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
