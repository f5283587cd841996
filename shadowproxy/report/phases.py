"""A route's evidence by cutover phase: stints while reading, phases and episodes at the end.

Every rollup and exchange record names its phase: ``mode``, canary percent
and ``mode_since`` (docs/evidence.md, Phases). While reading, each route's
sums are kept per **stint** (one phase entered at one moment on one
replica, ``PhaseAcc``); at most ``MAX_STINTS`` per route, later ones count
under the unknown phase, which is never a step's evidence. At the end a
route's stints give its totals and one ``PhaseSummary`` per phase, whose
``Episode`` is the phase's latest stretch: stints whose spans (``since`` to
their last rollup) overlap are one change reaching replicas a moment apart;
a stint that starts after the others ended is a new episode (the route left
the phase and came back), so a step is judged on the evidence gathered
since the route last entered it. ``PhaseTable`` holds every route's stints
while reading, with what diverged exchange records say about each: how many
structural ones the known differences explain, how many semantic ones they
do not. Imports the accumulators, records, known differences and values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence

from shadowproxy.histogram import LatencyHistogram
from shadowproxy.report.accumulators import RouteAcc
from shadowproxy.report.known import KnownSet
from shadowproxy.report.records import UNKNOWN_PHASE, ExchangeRecord, PhaseKey, phase_key
from shadowproxy.report.summary import (
    COUNTED,
    Counts,
    Episode,
    LatencySummary,
    PhaseSummary,
    Quantiles,
)

__all__ = [
    "MAX_STINTS",
    "PhaseAcc",
    "PhaseTable",
    "RouteTotals",
    "counts_of",
    "quantiles",
    "summarise",
]

MAX_STINTS = 64
"""Stints kept per route; later ones are summed under the unknown phase."""


def quantiles(hist: LatencyHistogram) -> Quantiles:
    """p50, p95 and p99 of a histogram."""
    return Quantiles(hist.quantile(0.5), hist.quantile(0.95), hist.quantile(0.99))


class PhaseAcc(RouteAcc):
    """One stint's sums, its span, and what its exchange records say."""

    __slots__ = (
        "first",
        "last",
        "seen_first",
        "seen_last",
        "semantic_described",
        "semantic_undocumented",
        "structural_documented",
    )

    def __init__(self) -> None:
        super().__init__()
        self.first = math.inf
        self.last = -math.inf
        self.seen_first = math.inf
        self.seen_last = -math.inf
        self.structural_documented = 0
        self.semantic_described = 0
        self.semantic_undocumented = 0

    def span(self, start: float, end: float) -> None:
        """A rollup of this stint from ``start`` to ``end``."""
        self.first = min(self.first, start)
        self.last = max(self.last, end)

    def seen(self, ts: float) -> None:
        """An exchange record of this stint at ``ts``."""
        self.seen_first = min(self.seen_first, ts)
        self.seen_last = max(self.seen_last, ts)

    @property
    def bounds(self) -> tuple[float, float]:
        """The stint's span: its rollups', or its exchanges' before its first rollup.

        A route that just entered a phase has exchange records in it before
        the rollup of its first interval is written (or when that rollup is
        dropped): the phase is then known, with nothing compared yet.
        """
        if self.first <= self.last:
            return self.first, self.last
        return self.seen_first, self.seen_last

    def merge(self, other: RouteAcc) -> None:
        """Add another accumulator of the same stint (or, for totals, of the same route)."""
        super().merge(other)
        if isinstance(other, PhaseAcc):
            self.span(other.first, other.last)
            self.seen(other.seen_first)
            self.seen(other.seen_last)
            self.structural_documented += other.structural_documented
            self.semantic_described += other.semantic_described
            self.semantic_undocumented += other.semantic_undocumented


def counts_of(acc: RouteAcc) -> Counts:
    """The counters an accumulator summed."""
    counted = dict(zip(COUNTED, acc.counters, strict=True))
    return Counts.of({**counted, "streams": acc.streams}, acc.skipped)


class RouteTotals:
    """A route's sums over every stint, with its histograms as the domain merges them."""

    __slots__ = ("candidate", "counts", "legacy", "structural_documented")

    def __init__(self, acc: PhaseAcc) -> None:
        self.counts = counts_of(acc)
        self.legacy = acc.legacy.histogram()
        self.candidate = acc.candidate.histogram()
        self.structural_documented = acc.structural_documented

    @property
    def latency(self) -> LatencySummary:
        """The route's latency summary."""
        return LatencySummary(quantiles(self.legacy), quantiles(self.candidate))


def _merged(accs: Iterable[PhaseAcc]) -> PhaseAcc:
    total = PhaseAcc()
    for acc in accs:
        total.merge(acc)
    return total


def _episode(stints: list[tuple[PhaseKey, PhaseAcc]]) -> Episode:
    """The latest stretch of overlapping stints of one phase."""
    spans = sorted(
        (
            (since if since is not None else acc.bounds[0], acc.bounds[1], since, acc)
            for (_, _, since), acc in stints
        ),
        key=lambda span: (span[0], span[1]),
    )
    groups: list[list[tuple[float, float, float | None, PhaseAcc]]] = []
    end = -math.inf
    for span in spans:
        if not groups or span[0] > end:
            groups.append([])
        groups[-1].append(span)
        end = max(end, span[1]) if len(groups[-1]) > 1 else span[1]
    group = groups[-1]
    knowns = [since for _, _, since, _ in group if since is not None]
    acc = _merged(a for _, _, _, a in group)
    return Episode(
        since=min(knowns) if len(knowns) == len(group) else None,
        end=acc.bounds[1],
        counts=counts_of(acc),
        latency=LatencySummary(
            quantiles(acc.legacy.histogram()), quantiles(acc.candidate.histogram())
        ),
        structural_documented=acc.structural_documented,
        semantic_described=acc.semantic_described,
        semantic_undocumented=acc.semantic_undocumented,
    )


def summarise(stints: Mapping[PhaseKey, PhaseAcc]) -> tuple[RouteTotals, tuple[PhaseSummary, ...]]:
    """A route's totals, and its phases, the latest first."""
    by_phase: dict[tuple[str, float | None], list[tuple[PhaseKey, PhaseAcc]]] = {}
    for key, acc in stints.items():
        by_phase.setdefault((key[0], key[1]), []).append((key, acc))
    phases = []
    for (mode, percent), members in by_phase.items():
        acc = _merged(a for _, a in members)
        phases.append(
            PhaseSummary(
                mode=mode,
                percent=percent,
                counts=counts_of(acc),
                latency=LatencySummary(
                    quantiles(acc.legacy.histogram()), quantiles(acc.candidate.histogram())
                ),
                first=acc.bounds[0],
                last=acc.bounds[1],
                episode=_episode(members),
            )
        )
    phases.sort(key=lambda p: (-p.last, p.mode, p.percent or 0.0))
    return RouteTotals(_merged(stints.values())), tuple(phases)


Stints = dict[PhaseKey, PhaseAcc]
"""One route's sums by stint."""


class PhaseTable:
    """Every route's stints while reading, at most ``max_routes`` routes."""

    __slots__ = ("_max_routes", "_routes")

    def __init__(self, max_routes: int) -> None:
        self._max_routes = max_routes
        self._routes: dict[tuple[str, str], Stints] = {}

    def stint(self, domain: str, route: str, phase: PhaseKey) -> PhaseAcc | None:
        """The sums of one stint (past ``MAX_STINTS``, the unknown phase's); None past the cap."""
        stints = self._routes.get((domain, route))
        if stints is None:
            if len(self._routes) >= self._max_routes:
                return None
            stints = self._routes[(domain, route)] = {}
        acc = stints.get(phase)
        if acc is None:
            if len(stints) >= MAX_STINTS:
                phase = UNKNOWN_PHASE
                acc = stints.get(phase)
            if acc is None:
                acc = stints[phase] = PhaseAcc()
        return acc

    def described(
        self,
        record: ExchangeRecord,
        domain: str,
        classes: Sequence[str],
        known: KnownSet,
        ts: float,
    ) -> bool:
        """Count what a diverged exchange (at ``ts``) says about its stint; False past the
        route cap.

        Structural: documented when every structural difference is explained
        and none was left out (``differences_omitted``). Semantic: described,
        and undocumented when one is not explained or some were left out.
        """
        acc = self.stint(domain, record.route, phase_key(record))
        if acc is None:
            return False
        acc.seen(ts)
        complete = record.differences_omitted in (0, None)
        route = record.route
        shown = [d for d in record.differences or () if not d.noise]
        if "structural" in classes and complete:
            structural = [d for d in shown if d.cls == "structural"]
            if structural and all(known.explains(route, d.cls, d.kind, d.path) for d in structural):
                acc.structural_documented += 1
        if "semantic" in classes:
            acc.semantic_described += 1
            semantic = [d for d in shown if d.cls == "semantic"]
            if not complete or not all(
                known.explains(route, d.cls, d.kind, d.path) for d in semantic
            ):
                acc.semantic_undocumented += 1
        return True

    def merge(self, other: PhaseTable) -> None:
        """Add another table (from a worker process), keeping the caps."""
        for (domain, route), theirs in other._routes.items():
            for phase, acc in theirs.items():
                mine = self.stint(domain, route, phase)
                if mine is not None:
                    mine.merge(acc)

    def routes(self) -> Iterator[tuple[tuple[str, str], Stints]]:
        """``((domain, route), stints)`` in order."""
        return iter(sorted(self._routes.items()))
