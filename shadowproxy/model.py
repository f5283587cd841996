"""Domain values shared by every layer: observations, exchanges, differences, verdicts.

This module is the innermost layer but one: it imports only the standard
library and ``kinds`` (the contract's vocabularies, re-exported here), and
never touches asyncio, sockets or files. Everything here is a frozen value.

The values built for every request (``Observation``, ``RequestFacts``,
``Exchange``) write their ``__init__`` out instead of letting ``dataclass``
generate it: mypyc compiles a written one (about 30 ns for six fields), while
the generated one is made at import time and runs in the interpreter even in
the compiled build (about 900 ns). Each sets its fields with
``object.__setattr__``, as a frozen dataclass's generated ``__init__`` does,
and takes the same parameters in the same order with the same defaults
(``tests/test_values.py`` holds every written ``__init__`` to its fields, and
every ``with_*`` copy to them too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from shadowproxy.kinds import (
    ClientTimeout,
    ConnectionRefusal,
    DiffClass,
    ErrorKind,
    EventFate,
    Outcome,
    SkipReason,
    StreamKind,
    Upstream,
    WindowEnd,
)

__all__ = [
    "EVENT_METHOD",
    "NO_EQUIVALENCES",
    "SHADOW_PHASE",
    "ClientTimeout",
    "ConnectionRefusal",
    "DiffClass",
    "Difference",
    "ErrorKind",
    "EventFate",
    "Exchange",
    "Headers",
    "JsonValue",
    "Observation",
    "Outcome",
    "Phase",
    "RequestFacts",
    "SkipReason",
    "StreamEvent",
    "StreamKind",
    "StreamWindow",
    "Upstream",
    "Verdict",
    "WindowEnd",
]

Headers = tuple[tuple[str, str], ...]
"""Response headers in wire order, names as received (compare them lower-cased)."""
JsonValue = object
"""A JSON-compatible value: None, a bool, number or string, or lists and dicts of them.

A dataclass field of this type names the alias, never ``object`` itself: mypyc
(the compiled build) cannot build a dataclass with a field annotated ``object``."""


EVENT_METHOD = "EVENT"
"""The method of an exchange that pairs two NATS events: it has no latency (docs/nats.md)."""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One message of a stream: an SSE event, or a WebSocket message from the server.

    ``type`` is the SSE event type (``message`` by default) or, for a
    WebSocket, ``text`` or ``binary``. ``data`` is the event's data (UTF-8 for
    SSE and text messages). ``at_s`` is when it arrived, in seconds since the
    request started (monotonic clock).
    """

    type: str
    data: bytes
    id: str | None = None
    at_s: float = 0.0


@dataclass(frozen=True, slots=True)
class StreamWindow:
    """What one side sent during a stream's comparison window."""

    kind: StreamKind
    events: tuple[StreamEvent, ...]
    ended: WindowEnd
    closed_s: float = 0.0
    """When the window closed, in seconds since the request started."""
    size: int = 0
    """Bytes read within the window."""

    @property
    def cut(self) -> bool:
        """True when the window closed before the stream ended: later events were not read."""
        return self.ended is not WindowEnd.END


@dataclass(frozen=True, slots=True)
class Observation:
    """One upstream's answer to one request, or the reason there was none.

    ``body`` holds at most the comparison cap; ``body_size`` counts every byte
    received and ``truncated`` says the cap cut the body short. ``elapsed_s``
    comes from a monotonic clock. A stream's observation has ``stream`` set
    and no ``body``; its ``elapsed_s`` is the latency of its first event (or
    the window's length when it sent none).
    """

    status: int | None
    headers: Headers = ()
    body: bytes = b""
    elapsed_s: float = 0.0
    body_size: int = 0
    truncated: bool = False
    error: ErrorKind | None = None
    stream: StreamWindow | None = None

    def __init__(
        self,
        status: int | None,
        headers: Headers = (),
        body: bytes = b"",
        elapsed_s: float = 0.0,
        body_size: int = 0,
        truncated: bool = False,
        error: ErrorKind | None = None,
        stream: StreamWindow | None = None,
    ) -> None:
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "elapsed_s", elapsed_s)
        object.__setattr__(self, "body_size", body_size)
        object.__setattr__(self, "truncated", truncated)
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "stream", stream)

    @property
    def ok(self) -> bool:
        """True when the upstream answered completely."""
        return self.error is None

    def header(self, name: str) -> str | None:
        """First value of the header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def with_body(self, body: bytes) -> Observation:
        """This observation with ``body`` in place of its own (``body_size`` unchanged)."""
        return Observation(
            self.status,
            self.headers,
            body,
            self.elapsed_s,
            self.body_size,
            self.truncated,
            self.error,
            self.stream,
        )

    @staticmethod
    def failed(error: ErrorKind, elapsed_s: float) -> Observation:
        """An outcome for an upstream that gave no usable answer."""
        return Observation(None, elapsed_s=elapsed_s, error=error)


@dataclass(frozen=True, slots=True)
class Phase:
    """A route's cutover phase when a request arrived: what the evidence is filed under.

    ``mode`` is the effective mode (``shadow``, ``canary``, ``candidate``,
    ``legacy-only``, or ``force-legacy`` while force-legacy overrides a canary or
    candidate route); ``percent`` the canary percent (None unless ``canary``);
    ``since`` when the route entered this mode and percent (epoch seconds; None
    where nothing can switch the mode, as for NATS subjects).
    """

    mode: str = "shadow"
    percent: float | None = None
    since: float | None = None

    def __hash__(self) -> int:
        # Written out so mypyc compiles it: every evidence rollup key holds a phase,
        # and dataclass's generated __hash__ runs as Python bytecode per request.
        return hash((self.mode, self.percent, self.since))


SHADOW_PHASE = Phase()
"""The phase of a request on a route no cutover control governs."""


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the comparison and the evidence need to know about the client request.

    ``path`` is the raw request target without its query string; the query is
    kept apart so sinks can drop or redact it.
    """

    id: str
    """Unique per exchange, made by the proxy (never taken from the client)."""
    method: str
    path: str
    query: str
    route: str
    domain: str
    started_at: float
    """Wall-clock start, seconds since the epoch (for timestamps only, never durations)."""
    client_request_id: str | None = None
    """The client's own request id (``X-Request-Id``), as sent; sinks scrub and cut it."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """The request's secret values; sinks scrub them wherever they come back, never record them."""
    phase: Phase = SHADOW_PHASE
    """The route's cutover phase when the request arrived."""

    def __init__(
        self,
        id: str,
        method: str,
        path: str,
        query: str,
        route: str,
        domain: str,
        started_at: float,
        client_request_id: str | None = None,
        secrets: tuple[str, ...] = (),
        phase: Phase = SHADOW_PHASE,
    ) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "query", query)
        object.__setattr__(self, "route", route)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "started_at", started_at)
        object.__setattr__(self, "client_request_id", client_request_id)
        object.__setattr__(self, "secrets", secrets)
        object.__setattr__(self, "phase", phase)


@dataclass(frozen=True, slots=True)
class Exchange:
    """A request together with every upstream's observation of it.

    ``legacy`` and ``candidate`` keep their names whichever side answered the
    client; ``answered_by`` says which one did.
    """

    request: RequestFacts
    legacy: Observation
    candidate: Observation
    secondary: Observation | None = None
    answered_by: Upstream = Upstream.LEGACY

    def __init__(
        self,
        request: RequestFacts,
        legacy: Observation,
        candidate: Observation,
        secondary: Observation | None = None,
        answered_by: Upstream = Upstream.LEGACY,
    ) -> None:
        object.__setattr__(self, "request", request)
        object.__setattr__(self, "legacy", legacy)
        object.__setattr__(self, "candidate", candidate)
        object.__setattr__(self, "secondary", secondary)
        object.__setattr__(self, "answered_by", answered_by)

    def with_sides(
        self, legacy: Observation, candidate: Observation, secondary: Observation | None
    ) -> Exchange:
        """This exchange with other observations of its sides."""
        return Exchange(self.request, legacy, candidate, secondary, self.answered_by)

    @property
    def stream_kind(self) -> StreamKind | None:
        """``sse``, ``websocket`` or ``grpc`` when the exchange is a stream (either side's)."""
        for side in (self.legacy, self.candidate):
            if side.stream is not None:
                return side.stream.kind
        return None


@dataclass(frozen=True, slots=True)
class Difference:
    """One leaf-level difference between legacy and candidate.

    ``path`` is a JSONPath for bodies (``$.items[3].price``), the lower-cased
    header name for headers, ``status`` for the status code, ``latency`` for
    timing. ``legacy`` and ``candidate`` are JSON-compatible values (None when
    the side is missing).
    """

    cls: DiffClass
    kind: str
    path: str
    legacy: JsonValue = None
    candidate: JsonValue = None
    noise: bool = False

    def __init__(
        self,
        cls: DiffClass,
        kind: str,
        path: str,
        legacy: JsonValue = None,
        candidate: JsonValue = None,
        noise: bool = False,
    ) -> None:
        object.__setattr__(self, "cls", cls)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "legacy", legacy)
        object.__setattr__(self, "candidate", candidate)
        object.__setattr__(self, "noise", noise)


NO_EQUIVALENCES: Mapping[str, int] = MappingProxyType({})
"""The read-only equivalences of a verdict that counted none."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The comparison result for one exchange.

    Noise differences stay in ``differences`` with ``noise=True`` and never
    contribute to ``classes``. ``equivalences`` counts how often each
    cross-runtime equivalence made two values equal.
    """

    outcome: Outcome
    classes: frozenset[DiffClass] = frozenset()
    differences: tuple[Difference, ...] = ()
    equivalences: Mapping[str, int] = field(default_factory=dict)
    note: str | None = None
