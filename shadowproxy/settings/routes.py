"""The settings of routes and their ownership: matching, streams, ids, capture, cutover.

A ``RouteSpec`` is one configured HTTP route; ``CutoverSettings`` says who
answers routes by default and when a route the candidate answers rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shadowproxy.compare.rules import CompareRules
from shadowproxy.settings.proxy import StreamSettings

__all__ = [
    "MAX_LEARNED_ROUTE",
    "CutoverSettings",
    "IdentitySettings",
    "RollbackSettings",
    "RouteCapture",
    "RouteIdentity",
    "RouteMode",
    "RouteSpec",
    "RouteStream",
    "WebSocketMode",
]

MAX_LEARNED_ROUTE = 128
"""The longest route name learned from traffic (an HTTP path's normalised name, a gRPC
method's full name); a longer one is counted as ``other`` and takes no place in the table."""


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
