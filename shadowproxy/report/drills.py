"""The ``shadow drill`` runs in the evidence: one per run, however many replicas recorded it.

Owns collecting ``drill`` records while reading: the records of one run
share an ``id`` (``shadow drill`` writes one on every replica it drilled),
so they are one run, passed only when every record says so, with the number
of replicas. A record without an id (older ones) is a run of its own. At
most ``MAX_DRILLS`` runs are kept, the latest. Imports the report's values.
"""

from __future__ import annotations

from shadowproxy.report.summary import DrillSummary

__all__ = ["MAX_DRILLS", "DrillLog"]

MAX_DRILLS = 1_000
"""Drill runs kept; past it the oldest is forgotten."""


class DrillLog:
    """Drill runs by (route, id) while reading."""

    __slots__ = ("_runs",)

    def __init__(self) -> None:
        self._runs: dict[tuple[str, str], DrillSummary] = {}

    def add(self, drill: DrillSummary) -> None:
        """One replica's record of a drill run (or a run merged from another log)."""
        key = (drill.route, drill.drill_id or f"@{drill.ts}")
        seen = self._runs.get(key)
        if seen is not None:
            drill = DrillSummary(
                min(seen.ts, drill.ts),
                drill.route,
                seen.passed and drill.passed,
                drill.drill_id,
                seen.replicas + drill.replicas,
            )
        elif len(self._runs) >= MAX_DRILLS:
            oldest = min(self._runs, key=lambda k: self._runs[k].ts)
            if self._runs[oldest].ts >= drill.ts:
                return
            del self._runs[oldest]
        self._runs[key] = drill

    def merge(self, other: DrillLog) -> None:
        """Add another log's runs (from a worker process)."""
        for drill in other._runs.values():
            self.add(drill)

    def drills(self) -> tuple[DrillSummary, ...]:
        """Every run kept, oldest first."""
        return tuple(sorted(self._runs.values(), key=lambda d: (d.ts, d.route)))
