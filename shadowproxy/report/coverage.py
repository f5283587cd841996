"""Which stretches of a domain's gate window the rollups cover, per worker and together.

Owns collecting each counted rollup's ``[ts_start, ts_end)`` per (domain,
worker) while reading, and finding the gaps a gate must not pass over:

- the window starting before the first rollup, or ending after the last;
- a stretch inside the window that no worker's rollups cover;
- a stretch between one worker's first and last rollup that its own rollups
  do not cover (a lost or unshipped file), even when other workers cover it.

A gap longer than the domain's ``max_gap`` keeps the window from being
covered. A worker is the file name without ``.rollups``, ``.jsonl``, ``.N``
and ``.gz`` (``sources.worker_of``), so its active, rotated, compressed and
shipped files are one series. Stretches closer than the smallest
``max_gap`` are joined as they arrive, so memory is bounded by the window
over that gap; a worker with more than ``MAX_STRETCHES`` stretches is
"fragmented" and its domain not covered. ``explain`` says it in words.
Imports the report's values and time formats.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from shadowproxy.report.summary import Coverage, Gap, WorkerSpan
from shadowproxy.report.timeparse import format_duration, format_instant

__all__ = ["MAX_GAPS", "MAX_STRETCHES", "MAX_WORKERS", "CoverageLog", "Spans", "explain"]

MAX_STRETCHES = 20_000
"""Disjoint stretches kept per (domain, worker); past it the worker is fragmented."""
MAX_GAPS = 20
"""Gaps listed per domain (the longest); ``gaps_total`` counts them all."""
MAX_WORKERS = 100
"""Workers listed per domain (the earliest); ``workers_total`` counts them all."""


class Spans:
    """Sorted, disjoint ``[start, end)`` stretches; ones closer than ``join`` are joined."""

    __slots__ = ("ends", "fragmented", "join", "rollups", "starts")

    def __init__(self, join: float) -> None:
        self.join = join
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.rollups = 0
        self.fragmented = False

    def add(self, start: float, end: float, rollups: int = 1) -> None:
        """Cover ``[start, end)``."""
        self.rollups += rollups
        starts, ends, join = self.starts, self.ends, self.join
        # Rollups mostly arrive in time order: extend or append the last stretch.
        if starts and start >= starts[-1]:
            if start <= ends[-1] + join:
                if end > ends[-1]:
                    ends[-1] = end
                return
            if len(starts) < MAX_STRETCHES:
                starts.append(start)
                ends.append(end)
            else:
                self.fragmented = True
            return
        i = bisect.bisect_right(starts, start)
        low, high = start, end
        if i and ends[i - 1] + join >= start:
            i -= 1
            low = starts[i]
        j = i
        while j < len(starts) and starts[j] <= high + join:
            high = max(high, ends[j])
            j += 1
        if j == i and len(starts) >= MAX_STRETCHES:
            self.fragmented = True
            return
        starts[i:j] = [low]
        ends[i:j] = [high]

    def merge(self, other: Spans) -> None:
        """Cover every stretch of ``other`` too."""
        for start, end in zip(other.starts, other.ends, strict=True):
            self.add(start, end, 0)
        self.rollups += other.rollups
        self.fragmented = self.fragmented or other.fragmented

    def holes(self, longer_than: float) -> list[tuple[float, float]]:
        """Uncovered stretches between the first and the last, longer than ``longer_than``."""
        return [
            (end, start)
            for end, start in zip(self.ends, self.starts[1:], strict=False)
            if start - end > longer_than
        ]

    def covered_s(self) -> float:
        """Seconds covered (with holes up to ``join`` counted as covered)."""
        return sum(end - start for start, end in zip(self.starts, self.ends, strict=True))


class CoverageLog:
    """Rollup stretches per (domain, worker) while reading."""

    __slots__ = ("_join", "_spans")

    def __init__(self, join: float) -> None:
        self._join = join
        self._spans: dict[tuple[str, str], Spans] = {}

    def add(self, domain: str, worker: str, start: float, end: float) -> None:
        """A counted rollup of ``domain`` from ``worker`` covering ``[start, end)``."""
        spans = self._spans.get((domain, worker))
        if spans is None:
            spans = self._spans[(domain, worker)] = Spans(self._join)
        spans.add(start, end)

    def merge(self, other: CoverageLog) -> None:
        """Add another log (from a worker process)."""
        for key, theirs in other._spans.items():
            mine = self._spans.get(key)
            if mine is None:
                self._spans[key] = theirs
            else:
                mine.merge(theirs)

    def coverage(self, domain: str, since: float, until: float, max_gap: float) -> Coverage:
        """How the rollups of ``domain`` cover ``[since, until)``, gaps over ``max_gap``."""
        workers = sorted(
            ((worker, spans) for (d, worker), spans in self._spans.items() if d == domain),
            key=lambda ws: (ws[1].starts[0] if ws[1].starts else until, ws[0]),
        )
        union = Spans(self._join)
        for _, spans in workers:
            union.merge(spans)
        if not union.starts:
            gaps = [Gap(since, until, None, "window")]
            return _coverage(since, until, max_gap, None, None, 0.0, gaps, workers, False)
        first, last = union.starts[0], max(union.ends)
        shared = [Gap(end, start, None, "between") for end, start in union.holes(max_gap)]
        gaps = list(shared)
        if first - since > max_gap:
            gaps.append(Gap(since, first, None, "start"))
        if until - last > max_gap:
            gaps.append(Gap(last, until, None, "end"))
        for worker, spans in workers:
            gaps.extend(
                Gap(end, start, worker, "worker")
                for end, start in spans.holes(max_gap)
                if not any(g.start <= end and start <= g.end for g in shared)
            )
        fragmented = any(spans.fragmented for _, spans in workers)
        return _coverage(
            since, until, max_gap, first, last, union.covered_s(), gaps, workers, fragmented
        )


def _coverage(
    since: float,
    until: float,
    max_gap: float,
    first: float | None,
    last: float | None,
    covered_s: float,
    gaps: list[Gap],
    workers: Iterable[tuple[str, Spans]],
    fragmented: bool,
) -> Coverage:
    listed = list(workers)
    longest = sorted(gaps, key=lambda g: (-(g.end - g.start), g.start))
    return Coverage(
        since=since,
        until=until,
        max_gap_s=max_gap,
        covered=not gaps and not fragmented,
        first=first,
        last=last,
        covered_s=min(covered_s, until - since),
        gaps=tuple(longest[:MAX_GAPS]),
        gaps_total=len(gaps),
        workers=tuple(
            WorkerSpan(
                worker,
                spans.starts[0],
                max(spans.ends),
                spans.rollups,
                len(spans.holes(max_gap)),
                spans.fragmented,
            )
            for worker, spans in listed[:MAX_WORKERS]
            if spans.starts
        ),
        workers_total=len(listed),
        fragmented=fragmented,
    )


def _gap_text(gap: Gap) -> str:
    length = format_duration(gap.end - gap.start)
    start, end = format_instant(gap.start), format_instant(gap.end)
    if gap.where == "window":
        return "no evidence in the window"
    if gap.where == "start":
        return f"no evidence in the window's first {length} (it starts at {end})"
    if gap.where == "end":
        return f"no evidence in the window's last {length} (it ends at {start})"
    if gap.where == "worker":
        return f"worker {gap.worker} has no rollups from {start} to {end} ({length})"
    if gap.where == "missing":
        return f"no samples for {length} in all inside the window"
    return f"no evidence from {start} to {end} ({length})"


def explain(coverage: Coverage) -> str:
    """One sentence: how the window is covered, or its longest gaps."""
    window = format_duration(coverage.until - coverage.since)
    tolerance = format_duration(coverage.max_gap_s)
    if coverage.covered:
        return f"the evidence covers the {window} window with no gap over {tolerance}"
    parts = [_gap_text(gap) for gap in coverage.gaps[:3]]
    if coverage.gaps_total > 3:
        parts.append(f"{coverage.gaps_total - 3} more gaps over {tolerance}")
    if coverage.fragmented:
        parts.append(f"a worker's rollups are in over {MAX_STRETCHES} pieces")
    return "; ".join(parts)
