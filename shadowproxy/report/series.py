"""Bounded time series behind the HTML charts, fed with rollups (the denominators).

Owns two per-domain accumulators:

- the **activity** series: rollup counters keyed by the rollup's start, at a
  resolution (1 ms doubled as often as needed) chosen so that at most
  ``MAX_POINTS`` buckets cover the evidence present. The series spans exactly
  the evidence, a second or fourteen days, and each point keeps its first
  start and last end, so a chart draws what was measured and nothing else;
- the **days**: counters per 24 hours ending at ``until``, over the domain's
  window, for the per-day bars of the gate window.

Both merge exactly across worker processes (``parallel``). Memory is
``MAX_POINTS`` buckets plus one per day of the window per domain. These
series feed the HTML page only; the JSON contract keeps its ``timeline``.
Imports the report's values.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

from shadowproxy.report.summary import COUNTED, Counts, SeriesPoint

__all__ = ["DAY_S", "MAX_POINTS", "ChartSeries"]

MAX_POINTS = 120
"""Activity buckets per domain at most; the resolution doubles past it."""
DAY_S = 86400.0
_FIRST, _LAST = len(COUNTED), len(COUNTED) + 1

_Acc = list[float]
"""COUNTED counters, then the first start and the last end seen."""


def _new(start: float, end: float) -> _Acc:
    return [0.0] * len(COUNTED) + [start, end]


def _add(acc: _Acc, values: Sequence[float], start: float, end: float) -> None:
    # One C-level pass: this runs for every rollup, twice.
    acc[:_FIRST] = map(operator.add, acc[:_FIRST], values)
    if start < acc[_FIRST]:
        acc[_FIRST] = start
    if end > acc[_LAST]:
        acc[_LAST] = end


def _fold(into: dict[int, _Acc], key: int, acc: _Acc) -> None:
    mine = into.get(key)
    if mine is None:
        into[key] = list(acc)
    else:
        _add(mine, acc[:_FIRST], acc[_FIRST], acc[_LAST])


class _Domain:
    """One domain's activity buckets (at ``1 ms * 2**shift``) and days (keyed by days ago)."""

    __slots__ = ("buckets", "days", "shift")

    def __init__(self) -> None:
        self.shift = 0
        self.buckets: dict[int, _Acc] = {}
        self.days: dict[int, _Acc] = {}

    def add(self, values: Sequence[float], start: float, end: float, day: int) -> None:
        key = int(start * 1000) >> self.shift
        acc = self.buckets.get(key)
        if acc is None:
            acc = self.buckets[key] = _new(start, end)
            if len(self.buckets) > MAX_POINTS:
                self.coarsen(self.shift + 1)
                acc = self.buckets[int(start * 1000) >> self.shift]
        _add(acc, values, start, end)
        acc = self.days.get(day)
        if acc is None:
            acc = self.days[day] = _new(start, end)
        _add(acc, values, start, end)

    def coarsen(self, shift: int) -> None:
        """Re-key to ``shift`` (or coarser) until at most MAX_POINTS buckets remain."""
        while True:
            step = shift - self.shift
            if step > 0:
                merged: dict[int, _Acc] = {}
                for key, acc in self.buckets.items():
                    _fold(merged, key >> step, acc)
                self.buckets, self.shift = merged, shift
            if len(self.buckets) <= MAX_POINTS:
                return
            shift += 1

    def merge(self, other: _Domain) -> None:
        theirs = other.buckets
        if other.shift < self.shift:
            theirs = {}
            for key, acc in other.buckets.items():
                _fold(theirs, key >> (self.shift - other.shift), acc)
        else:
            self.coarsen(other.shift)
        for key, acc in theirs.items():
            _fold(self.buckets, key, acc)
        self.coarsen(self.shift)
        for day, acc in other.days.items():
            _fold(self.days, day, acc)


def _point(acc: _Acc, start: float, end: float) -> SeriesPoint:
    counts = Counts.of({name: int(acc[i]) for i, name in enumerate(COUNTED)})
    return SeriesPoint(start, end, counts)


class ChartSeries:
    """Per-domain activity and per-day counters; ``add`` one rollup at a time."""

    __slots__ = ("_domains", "_until")

    def __init__(self, until: float) -> None:
        self._until = until
        self._domains: dict[str, _Domain] = {}

    def add(self, domain: str, values: Sequence[float], start: float, end: float) -> None:
        """Count one in-window rollup (COUNTED ``values``) that ran from ``start`` to ``end``."""
        until = self._until
        if end > until:
            end = until
        elif end < start:
            end = start
        series = self._domains.get(domain)
        if series is None:
            series = self._domains[domain] = _Domain()
        # Day d holds starts in [until - (d+1) days, until - d days): a rollup
        # starting exactly at the window's start is in its oldest day.
        series.add(values, start, end, math.ceil((until - start) / DAY_S) - 1)

    def merge(self, other: ChartSeries) -> None:
        """Add another worker's series."""
        for domain, series in other._domains.items():
            mine = self._domains.get(domain)
            if mine is None:
                self._domains[domain] = series
            else:
                mine.merge(series)

    def activity(self, domain: str) -> tuple[SeriesPoint, ...]:
        """The domain's buckets in time order, each from its first start to its last end."""
        series = self._domains.get(domain)
        if series is None:
            return ()
        return tuple(
            _point(acc, acc[_FIRST], acc[_LAST]) for _, acc in sorted(series.buckets.items())
        )

    def days(self, domain: str, since: float) -> tuple[SeriesPoint, ...]:
        """Every 24 hours from ``since`` to ``until`` (the oldest may be shorter), oldest first."""
        count = max(1, math.ceil((self._until - since) / DAY_S - 1e-9))
        series = self._domains.get(domain)
        found = series.days if series is not None else {}
        out = []
        for day in reversed(range(count)):
            end = self._until - day * DAY_S
            acc = found.get(day) or _new(end, end)
            out.append(_point(acc, max(since, end - DAY_S), end))
        return tuple(out)
