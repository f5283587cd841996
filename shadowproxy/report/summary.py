"""The evidence a report evaluates, as frozen values.

Both sources produce a ``Findings``: the JSONL aggregator (``aggregate``)
and fleet mode (``fleet``, from Prometheus). Gates and renderers read only
these values. What was read (``InputStats``, the lines that could not be)
is in ``inputs``. Imports the standard library, ``stats`` and ``inputs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shadowproxy.report.inputs import InputStats, Unreadable
from shadowproxy.report.stats import Rate

__all__ = [
    "ALL_GATES",
    "ANY_DOMAIN",
    "BY_DESIGN",
    "COUNTED",
    "Counts",
    "Coverage",
    "DomainSummary",
    "DrillSummary",
    "Episode",
    "Findings",
    "FingerprintSummary",
    "Gap",
    "LatencySummary",
    "NoisePath",
    "OwnershipChange",
    "PhaseSummary",
    "Quantiles",
    "RouteSummary",
    "SeriesPoint",
    "TimelinePoint",
    "WorkerSpan",
]

ANY_DOMAIN = "*"
"""The domain of evidence that does not say which: it concerns every domain."""
ALL_GATES = "all"
"""Unreadable evidence that keeps every gate of its domain from passing."""

COUNTED = ("compared", "match", "diverged", "structural", "semantic", "timing", "noise", "errors")
"""The rollup counters, in report order."""
BY_DESIGN = frozenset({"method", "upgrade", "mode", "mirror_off"})
"""Skip reasons that mean a request is never compared by design, not by chance or load."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Summed rollup counters for a route or a domain."""

    compared: int = 0
    match: int = 0
    diverged: int = 0
    structural: int = 0
    semantic: int = 0
    timing: int = 0
    noise: int = 0
    errors: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    streams: int = 0
    """Compared exchanges that were streams (SSE windows, WebSocket sessions)."""

    @classmethod
    def of(cls, values: Mapping[str, int], skipped: Mapping[str, int] | None = None) -> Counts:
        """Counts from a mapping of COUNTED names and ``streams`` (missing ones are zero)."""
        v = [values.get(name, 0) for name in COUNTED]
        return cls(
            v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], dict(skipped or {}),
            values.get("streams", 0),
        )  # fmt: skip

    @property
    def skipped_total(self) -> int:
        """Requests not mirrored, all reasons together."""
        return sum(self.skipped.values())

    @property
    def not_shadowed(self) -> bool:
        """Nothing compared, and every request skipped by design (``BY_DESIGN``)."""
        return (
            self.compared == 0
            and self.skipped_total > 0
            and all(reason in BY_DESIGN for reason in self.skipped)
        )

    def rate(self, name: str) -> Rate:
        """``name`` (one of COUNTED) as a share of ``compared``."""
        hits = getattr(self, name)
        assert isinstance(hits, int)
        return Rate(hits, self.compared)

    def __add__(self, other: Counts) -> Counts:
        skipped = dict(self.skipped)
        for reason, n in other.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        summed = {name: getattr(self, name) + getattr(other, name) for name in COUNTED}
        summed["streams"] = self.streams + other.streams
        return Counts.of(summed, skipped)


@dataclass(frozen=True, slots=True)
class Quantiles:
    """Latency quantiles in milliseconds (None without observations)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Legacy against candidate latency."""

    legacy: Quantiles = Quantiles()
    candidate: Quantiles = Quantiles()

    @property
    def p99_ratio(self) -> float | None:
        """Candidate p99 over legacy p99, or None when either is unknown."""
        if self.legacy.p99 is None or self.candidate.p99 is None or self.legacy.p99 <= 0:
            return None
        return self.candidate.p99 / self.legacy.p99


@dataclass(frozen=True, slots=True)
class Episode:
    """A phase's latest stretch on a route: from when the replicas entered it, its evidence.

    ``since`` is the earliest ``mode_since`` of the stints that overlap (one
    change reaching several replicas a moment apart); None when the records
    do not say (gRPC, or records older than phases).
    """

    since: float | None
    end: float
    """The end of its latest rollup."""
    counts: Counts
    latency: LatencySummary
    structural_documented: int = 0
    """Structural exchanges whose every structural difference a known entry explains."""
    semantic_described: int = 0
    """Exchange records with a semantic divergence."""
    semantic_undocumented: int = 0
    """Of those, the ones with a semantic difference no known entry explains."""

    @property
    def duration_s(self) -> float:
        """How long the route has been in the phase, by its evidence (0 when unknown)."""
        return 0.0 if self.since is None else max(0.0, self.end - self.since)


@dataclass(frozen=True, slots=True)
class PhaseSummary:
    """A route's evidence in one phase (mode and canary percent) over the window."""

    mode: str
    """``shadow``, ``canary``, ``candidate``, ``legacy-only``, ``force-legacy``, or
    ``unknown`` for records older than phases."""
    percent: float | None
    counts: Counts
    latency: LatencySummary
    first: float
    """The start of its earliest rollup in the window."""
    last: float
    """The end of its latest rollup."""
    episode: Episode

    @property
    def label(self) -> str:
        """``canary 5%``, ``shadow``, ...: how tables and reasons name it."""
        return f"canary {self.percent:g}%" if self.percent is not None else self.mode


@dataclass(frozen=True, slots=True)
class RouteSummary:
    """One route's counters and latency over its domain's window, and per phase."""

    route: str
    domain: str
    counts: Counts
    latency: LatencySummary
    phases: tuple[PhaseSummary, ...] = ()
    """By phase, the latest first."""
    structural_documented: int = 0
    """Structural exchanges whose every structural difference a known entry explains."""


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """Compared and diverged exchanges in one time bucket starting at ``start``."""

    start: float
    compared: int
    diverged: int


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """Rollup counters measured from ``start`` to ``end`` (a chart's bar)."""

    start: float
    end: float
    counts: Counts


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch of a gate window without rollups.

    ``where``: ``start`` (before the first rollup), ``end`` (after the last),
    ``between`` (no worker covers it), ``worker`` (between this ``worker``'s
    first and last rollup, its own rollups miss it), ``window`` (no rollup at
    all), ``missing`` (fleet mode: samples missing somewhere in the window,
    ``end - start`` long in total).
    """

    start: float
    end: float
    worker: str | None
    where: str


@dataclass(frozen=True, slots=True)
class WorkerSpan:
    """One worker's rollups of a domain: from when to when, how many, how many gaps."""

    worker: str
    first: float
    last: float
    rollups: int
    gaps: int
    fragmented: bool = False


@dataclass(frozen=True, slots=True)
class Coverage:
    """How a domain's rollups cover its gate window ``[since, until)``."""

    since: float
    until: float
    max_gap_s: float
    covered: bool
    """No gap longer than ``max_gap_s`` and no fragmented worker."""
    first: float | None
    last: float | None
    covered_s: float
    gaps: tuple[Gap, ...] = ()
    """The longest gaps over ``max_gap_s`` (at most ``coverage.MAX_GAPS``)."""
    gaps_total: int = 0
    workers: tuple[WorkerSpan, ...] = ()
    workers_total: int = 0
    fragmented: bool = False


@dataclass(frozen=True, slots=True)
class DomainSummary:
    """A domain: its routes' counters summed, latency merged, and when it was last broken."""

    domain: str
    since: float
    counts: Counts
    latency: LatencySummary
    last_structural: float | None
    first_seen: float | None
    timeline: tuple[TimelinePoint, ...] = ()
    activity: tuple[SeriesPoint, ...] = ()
    """The evidence present, in at most ``series.MAX_POINTS`` buckets (HTML charts only)."""
    days: tuple[SeriesPoint, ...] = ()
    """Every 24 hours of the window ending at ``until``, oldest first (HTML charts only)."""
    coverage: Coverage | None = None
    """How the rollups cover the window (None: not measured)."""


@dataclass(frozen=True, slots=True)
class FingerprintSummary:
    """One kind of non-noise difference: where, how often, when, and an example."""

    route: str
    domain: str
    cls: str
    kind: str
    path: str
    count: int
    first_seen: float
    last_seen: float
    example: str

    @property
    def key(self) -> str:
        """The ``route|class|kind|path`` spelling used by the known-differences file."""
        return f"{self.route}|{self.cls}|{self.kind}|{self.path}"


@dataclass(frozen=True, slots=True)
class NoisePath:
    """A body path that was noise on a route, generalised over array indices."""

    route: str
    path: str
    count: int


@dataclass(frozen=True, slots=True)
class OwnershipChange:
    """One ``ownership`` record: who answers a route, from when, and why."""

    ts: float
    route: str
    from_mode: str
    to_mode: str
    percent: float | None
    reason: str
    source: str
    numbers: Mapping[str, float] = field(default_factory=dict)
    """What a rollback or promotion was decided on (the record's ``numbers``)."""


@dataclass(frozen=True, slots=True)
class DrillSummary:
    """One ``shadow drill`` run of a route (its replicas' records counted once)."""

    ts: float
    route: str
    passed: bool
    drill_id: str | None
    replicas: int = 1
    """Records of this run: one per replica it drilled."""


@dataclass(frozen=True, slots=True)
class Findings:
    """Everything a report says, before gates: from files or from Prometheus."""

    source: str
    """``files`` or ``prometheus``."""
    until: float
    routes: tuple[RouteSummary, ...]
    domains: tuple[DomainSummary, ...]
    fingerprints: tuple[FingerprintSummary, ...] = ()
    semantic_overflow: Mapping[str, int] = field(default_factory=dict)
    """Per domain, semantic differences the full fingerprint table could not track."""
    noise_paths: tuple[NoisePath, ...] = ()
    ownership: tuple[OwnershipChange, ...] = ()
    inputs: InputStats = InputStats()
    notes: tuple[str, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()
    """Lines in the window that could not be counted; they keep gates from passing."""
    drills: tuple[DrillSummary, ...] = ()
    """``shadow drill`` runs up to ``until``, oldest first (fleet mode has none)."""
