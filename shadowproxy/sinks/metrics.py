"""Every Prometheus metric of shadowproxy, defined here and only here.

Owns metric names, label sets and the bounding of label values (methods,
status classes), plus exposition for the admin endpoint, including
prometheus_client's multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is
set before ``prometheus_client`` is imported, each worker writes its values
to files there and ``multiprocess_registry()`` sums them.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from typing import Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.metrics import MetricWrapperBase

from shadowproxy import __version__
from shadowproxy.model import (
    ClientTimeout,
    ConnectionRefusal,
    DiffClass,
    ErrorKind,
    EventFate,
    Observation,
    Outcome,
    SkipReason,
    Upstream,
)
from shadowproxy.sinks.batch import Batch

__all__ = [
    "DROP_REASONS",
    "HOOKS",
    "LATENCY_BUCKETS_S",
    "METHODS",
    "RENDER_ATTEMPTS",
    "ROUTE_MODES",
    "Children",
    "Metrics",
    "code_class",
    "mark_worker_dead",
    "method_label",
    "multiprocess_registry",
    "render_metrics",
]

METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
    | {"REQUEST", "EVENT"}
)
"""Methods that are their own label value (HTTP's, and NATS requests and events); any other
is ``OTHER``."""

DROP_REASONS = ("queue_full", "write_error", "disk_cap", "encode_error", "closed")
"""Why a JSONL record was dropped (``shadowproxy_jsonl_dropped_total{reason}``)."""

HOOKS = (
    "on_request",
    "on_upstream",
    "on_skip",
    "on_verdict",
    "set_inflight",
    "tick",
    "write_record",
    "on_cutover",
    "on_connection_refused",
    "on_client_timeout",
    "flush",
    "on_nats",
)
"""Evidence hooks whose failures are counted (``shadowproxy_evidence_errors_total{hook}``)."""

ROUTE_MODES = ("shadow", "canary", "candidate", "legacy-only", "force-legacy")
"""Values of ``shadowproxy_route_mode{mode}``: a route's effective mode."""

"""Values of ``shadowproxy_rollbacks_total{reason}``."""

LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds of ``shadowproxy_upstream_latency_seconds`` (covers the default 30 s timeout)."""

RENDER_ATTEMPTS = 5
"""Collections one scrape tries when a worker's value file is half made (``render_metrics``)."""
_RENDER_RETRY_S = 0.005
"""The first pause between them; each next one is longer by as much (5, 10, 15, 20 ms)."""

_MAX_CHILDREN = 4096
_M = TypeVar("_M", bound=MetricWrapperBase)


def method_label(method: str) -> str:
    """``method`` when it is a known method, else ``OTHER`` (keeps the label bounded)."""
    upper = method.upper()
    return upper if upper in METHODS else "OTHER"


def code_class(status: int | None) -> str:
    """``2xx``-style class of ``status``; ``error`` when there was no valid upstream status."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


class Children(Generic[_M]):
    """A per-request cache of one metric's labelled children.

    ``labels()`` validates its values and takes a lock on every call (about
    2 us); the hot path calls it several times per request with a handful of
    distinct label tuples. Bounded, so odd label values cannot grow it.
    """

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: _M) -> None:
        self._metric: _M = metric
        self._children: dict[tuple[str, ...], _M] = {}

    def get(self, *values: str) -> _M:
        """The child for ``values``, as ``metric.labels(*values)`` returns it."""
        child = self._children.get(values)
        if child is None:
            child = self._metric.labels(*values)
            if len(self._children) < _MAX_CHILDREN:
                self._children[values] = child
        return child


class Metrics:
    """The metric objects, registered on ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry, version: str = __version__) -> None:
        self.registry = registry
        self.batch = Batch()
        """The hot path's writes, gathered per event-loop turn; registered first, so a
        collection of the registry writes them before it reads."""
        registry.register(self.batch)
        self.requests = Counter(
            "shadowproxy_requests",
            "Client requests answered, by route, method and status class.",
            ("route", "method", "code_class"),
            registry=registry,
        )
        self.comparisons = Counter(
            "shadowproxy_comparisons",
            "Exchanges compared, by verdict.",
            ("route", "domain", "verdict"),
            registry=registry,
        )
        self.divergences = Counter(
            "shadowproxy_divergences",
            "Compared exchanges with non-noise differences of a class (one exchange may count"
            " under several classes).",
            ("route", "domain", "class"),
            registry=registry,
        )
        self.upstream_latency = Histogram(
            "shadowproxy_upstream_latency_seconds",
            "Time from sending a request upstream to its complete answer or failure.",
            ("upstream", "route"),
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "shadowproxy_upstream_errors",
            "Upstream requests that gave no usable answer, by reason.",
            ("upstream", "reason"),
            registry=registry,
        )
        self.skipped = Counter(
            "shadowproxy_shadow_skipped",
            "Requests not mirrored to the shadow upstreams, by reason.",
            ("reason",),
            registry=registry,
        )
        self.inflight = Gauge(
            "shadowproxy_shadow_inflight",
            "Shadow requests in flight (summed over live workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.connections_refused = Counter(
            "shadowproxy_client_connections_refused",
            "Client connections closed on arrival, by reason: the worker had"
            " max_client_connections open, or the client's address its share of them.",
            ("reason",),
            registry=registry,
        )
        self.client_timeouts = Counter(
            "shadowproxy_client_timeouts",
            "Client connections closed because a request head or body was too slow, by phase.",
            ("phase",),
            registry=registry,
        )
        self.jsonl_records = Counter(
            "shadowproxy_jsonl_records",
            "JSONL evidence records written.",
            registry=registry,
        )
        self.jsonl_dropped = Counter(
            "shadowproxy_jsonl_dropped",
            "JSONL evidence records dropped instead of written, by reason.",
            ("reason",),
            registry=registry,
        )
        self.rollups_dropped = Counter(
            "shadowproxy_rollups_dropped",
            "Rollup, ownership and drill records dropped, by reason: the evidence of the gate"
            " window has a gap.",
            ("reason",),
            registry=registry,
        )
        self.evidence_errors = Counter(
            "shadowproxy_evidence_errors",
            "Evidence hook calls that failed (logged and ignored), by hook.",
            ("hook",),
            registry=registry,
        )
        self.build_info = Gauge(
            "shadowproxy_build_info",
            "Always 1; the version label says which shadowproxy runs.",
            ("version",),
            registry=registry,
            multiprocess_mode="max",
        )
        self.build_info.labels(version).set(1)
        self.route_mode = Gauge(
            "shadowproxy_route_mode",
            "1 for the mode each route is in (who answers it), 0 for the others.",
            ("route", "mode"),
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.streams = Counter(
            "shadowproxy_streams",
            "Streams compared (an SSE window or a WebSocket session each), by route and kind.",
            ("route", "domain", "kind"),
            registry=registry,
        )
        self.rollbacks = Counter(
            "shadowproxy_rollbacks",
            "Automatic rollbacks of a route to shadow mode, by trigger.",
            ("route", "reason"),
            registry=registry,
        )
        self.route_canary_percent = Gauge(
            "shadowproxy_route_canary_percent",
            "The candidate's share of each route's requests in percent (canary percent; 100 in"
            " candidate mode; 0 otherwise and under force-legacy).",
            ("route",),
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.fallbacks = Counter(
            "shadowproxy_fallback",
            "Requests retried on legacy after the candidate answering them failed, by route.",
            ("route",),
            registry=registry,
        )
        self.nats_events = Counter(
            "shadowproxy_nats_events",
            "NATS events by route, side and what became of them (matched, late, missing, extra,"
            " duplicate, uncorrelated, dropped).",
            ("route", "side", "result"),
            registry=registry,
        )
        self.nats_dropped = Counter(
            "shadowproxy_nats_dropped",
            "NATS messages a subscription dropped unprocessed, by route and reason"
            " (pending_full: it held nats.max_pending).",
            ("route", "reason"),
            registry=registry,
        )
        self.requests_by = Children(self.requests)
        self.comparisons_by = Children(self.comparisons)
        self.divergences_by = Children(self.divergences)
        self.upstream_latency_by = Children(self.upstream_latency)
        self.skipped_by = Children(self.skipped)
        self.fallbacks_by = Children(self.fallbacks)
        self.streams_by = Children(self.streams)
        self.nats_events_by = Children(self.nats_events)
        # Known label values start at zero so rates and absent() behave from the first scrape.
        for reason in DROP_REASONS:
            self.jsonl_dropped.labels(reason)
            self.rollups_dropped.labels(reason)
        for skip in SkipReason:
            self.skipped.labels(str(skip))
        for refusal in ConnectionRefusal:
            self.connections_refused.labels(str(refusal))
        for phase in ClientTimeout:
            self.client_timeouts.labels(str(phase))
        for upstream in Upstream:
            for kind in ErrorKind:
                self.upstream_errors.labels(str(upstream), str(kind))
        for hook in HOOKS:
            self.evidence_errors.labels(hook)

    def prime_nats(self, subjects: Iterable[str], event_subjects: Iterable[str]) -> None:
        """Start the NATS series of the configured subjects at zero."""
        for subject in subjects:
            self.nats_dropped.labels(subject, "pending_full")
        for subject in event_subjects:
            for side in (Upstream.LEGACY, Upstream.CANDIDATE):
                for fate in EventFate:
                    self.nats_events.labels(subject, str(side), str(fate))

    def prime_routes(self, routes: Iterable[tuple[str, str]]) -> None:
        """Start every (route, domain) series at zero: ``increase()`` misses a first non-zero."""
        for route, domain in routes:
            self.fallbacks.labels(route)
            for outcome in Outcome:
                self.comparisons.labels(route, domain, str(outcome))
            for cls in DiffClass:
                self.divergences.labels(route, domain, str(cls))

    def set_route_mode(self, route: str, mode: str, percent: float) -> None:
        """Mark ``mode`` as ``route``'s current mode (1), every other 0, and its canary percent."""
        for known in ROUTE_MODES:
            self.route_mode.labels(route, known).set(1 if known == mode else 0)
        self.route_canary_percent.labels(route).set(percent)

    def observe_upstream(self, upstream: str, route: str, observation: Observation) -> None:
        """Latency of every answer or failure; an error also counts under its reason."""
        elapsed = max(observation.elapsed_s, 0.0)
        self.batch.observe(self.upstream_latency_by, elapsed, upstream, route)
        if observation.error is not None:
            self.upstream_errors.labels(str(upstream), str(observation.error)).inc()


def multiprocess_registry() -> CollectorRegistry:
    """A registry summing every worker's values from ``PROMETHEUS_MULTIPROC_DIR``.

    Build it per scrape or once; it reads the files at collection time.
    Raises ValueError when the variable is unset or not a directory.
    """
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
    return registry


def mark_worker_dead(pid: int) -> None:
    """Tell multiprocess mode that worker ``pid`` exited so ``live*`` gauges drop it."""
    _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # untyped upstream


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The Prometheus text exposition of ``registry`` and its content type.

    A multiprocess registry reads every worker's value files, and a worker
    creates a file empty before it grows it to its first 64 KiB: a scrape
    that meets it in between gets ``struct.error`` from prometheus_client's
    reader (a 500 from the supervisor's ``/metrics``, seen in CI). That state
    lasts one system call, so the collection is tried again a few
    milliseconds later, at most ``RENDER_ATTEMPTS`` times in all; scrapes
    render in a thread (``admin/scrape.py``). Skipping the file instead would
    make its counters step back, which Prometheus reads as a reset.
    """
    attempt = 1
    while True:
        try:
            return generate_latest(registry), CONTENT_TYPE_LATEST
        except struct.error:
            if attempt == RENDER_ATTEMPTS:
                raise
            time.sleep(_RENDER_RETRY_S * attempt)
            attempt += 1
