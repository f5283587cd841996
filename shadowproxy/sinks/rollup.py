"""Per-route rollups: counts and latency histograms per interval (docs/evidence.md ``rollup``).

Owns the tallies kept between two rollup records and when the next one is
due. A route's requests are tallied per cutover phase (mode, canary percent
and since when), so evidence from shadow never mixes with a canary step's.
Runs on the event loop only, so it needs no locks. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from shadowproxy.histogram import LatencyHistogram
from shadowproxy.model import (
    EVENT_METHOD,
    SHADOW_PHASE,
    DiffClass,
    Exchange,
    Outcome,
    Phase,
    Verdict,
)
from shadowproxy.records import ROLLUP, SCHEMA_VERSION
from shadowproxy.timestamps import rfc3339

__all__ = ["Rollups", "RouteTally", "phase_fields"]

_OUTCOME_FIELD = {
    Outcome.MATCH: "match",
    Outcome.DIVERGED: "diverged",
    Outcome.NOISE: "noise",
    Outcome.ERROR: "errors",
}


def phase_fields(phase: Phase) -> dict[str, object]:
    """The ``mode``, ``canary_percent`` and ``mode_since`` fields of a record (docs/evidence.md)."""
    return {
        "mode": phase.mode,
        "canary_percent": phase.percent,
        "mode_since": None if phase.since is None else rfc3339(phase.since),
    }


class RouteTally:
    """What one route saw since its last rollup."""

    __slots__ = ("candidate", "counts", "dropped", "legacy", "skipped")

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(
            ("compared", *_OUTCOME_FIELD.values(), *(str(c) for c in DiffClass), "streams"), 0
        )
        self.skipped: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        """Exchange records of this route that were wanted but not written, by reason."""
        self.legacy = LatencyHistogram()
        self.candidate = LatencyHistogram()

    def add_verdict(self, exchange: Exchange, verdict: Verdict) -> None:
        """Count one compared exchange; latencies only from sides that answered (never events)."""
        self.counts["compared"] += 1
        self.counts[_OUTCOME_FIELD[verdict.outcome]] += 1
        for cls in verdict.classes:
            self.counts[str(cls)] += 1
        if exchange.stream_kind is not None:
            self.counts["streams"] += 1
        if exchange.request.method == EVENT_METHOD:
            return  # a pair of events has no latency: lateness is its own difference
        if exchange.legacy.ok:
            self.legacy.observe(exchange.legacy.elapsed_s * 1000)
        if exchange.candidate.ok:
            self.candidate.observe(exchange.candidate.elapsed_s * 1000)

    def add_skip(self, reason: str) -> None:
        """Count one request that was not mirrored."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def add_dropped(self, reasons: Mapping[str, int]) -> None:
        """Count exchange records of this route the writer dropped, by reason."""
        for reason, n in reasons.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def record(
        self, route: str, domain: str, phase: Phase, ts_start: float, ts_end: float
    ) -> dict[str, object]:
        """The ``rollup`` record of this tally."""
        return {
            "v": SCHEMA_VERSION,
            "type": ROLLUP,
            "ts_start": rfc3339(ts_start),
            "ts_end": rfc3339(ts_end),
            "route": route,
            "domain": domain,
            **phase_fields(phase),
            **self.counts,
            "skipped": dict(sorted(self.skipped.items())),
            "exchanges_dropped": dict(sorted(self.dropped.items())),
            "latency": {"legacy": self.legacy.to_json(), "candidate": self.candidate.to_json()},
        }


class Rollups:
    """Tallies per (route, domain, phase) and the interval clock.

    Intervals end on multiples of ``interval_s`` since the epoch, so every
    worker's rollups cover the same windows; the first one starts at ``now``.
    Routes with nothing to report in a window produce no record.
    """

    __slots__ = ("_due", "_interval", "_start", "_tallies")

    def __init__(self, interval_s: float, now: float) -> None:
        self._interval = interval_s
        self._tallies: dict[tuple[str, str, Phase], RouteTally] = {}
        self._start = now
        self._due = self._next_boundary(now)

    def tally(self, route: str, domain: str, phase: Phase = SHADOW_PHASE) -> RouteTally:
        """The current tally of ``route`` in ``phase`` (created on first use)."""
        key = (route, domain, phase)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = RouteTally()
        return tally

    def due(self, now: float) -> bool:
        """True when the current window has ended."""
        return now >= self._due

    def drain(
        self, now: float, dropped: Mapping[tuple[str, str, Phase], Mapping[str, int]] | None = None
    ) -> list[dict[str, object]]:
        """Close the window at ``now``: one record per active route, then start afresh.

        ``dropped`` (exchange records the writer could not write, by route,
        domain, phase and reason) is counted in the routes' records.
        """
        for key, reasons in (dropped or {}).items():
            self.tally(*key).add_dropped(reasons)
        records = [
            tally.record(route, domain, phase, self._start, now)
            for (route, domain, phase), tally in sorted(
                self._tallies.items(), key=lambda item: _order(item[0])
            )
        ]
        self._tallies = {}
        self._start = now
        self._due = self._next_boundary(now)
        return records

    def _next_boundary(self, now: float) -> float:
        """The first multiple of the interval strictly after ``now``."""
        if self._interval <= 0:
            return math.inf
        return (math.floor(now / self._interval) + 1) * self._interval


def _order(key: tuple[str, str, Phase]) -> tuple[str, str, str, float, float]:
    route, domain, phase = key
    return (route, domain, phase.mode, phase.percent or 0.0, phase.since or 0.0)
