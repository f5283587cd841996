"""Streaming aggregation of evidence records into bounded structures.

Owns the one pass over JSONL lines: per-route counters and merged latency
histograms from ``rollup`` records (the denominators), per-fingerprint
counters from ``exchange`` records (capped, overflow counted), noise paths,
per-domain timelines and ``ownership`` history. Memory depends on routes,
the caps and the timeline width, never on the number of records.
Well-formed exchanges and rollups are decoded typed (``records``); any other
line takes the general path through orjson. Imports orjson, the histogram core
and the report's own values.
"""

from __future__ import annotations

import operator
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import orjson

from shadowproxy.histogram import BUCKETS, LatencyHistogram
from shadowproxy.report.records import (
    Difference,
    ExchangeRecord,
    RollupRecord,
    decode_record,
    raw_text,
)
from shadowproxy.report.series import ChartSeries
from shadowproxy.report.summary import (
    COUNTED,
    Counts,
    DomainSummary,
    Findings,
    FingerprintSummary,
    InputStats,
    LatencySummary,
    NoisePath,
    OwnershipChange,
    Quantiles,
    RouteSummary,
    TimelinePoint,
)
from shadowproxy.report.timeparse import parse_record_ts

__all__ = ["MAX_FINGERPRINTS", "Aggregator", "Windows"]

MAX_FINGERPRINTS = 10_000
"""Distinct fingerprints tracked; later new ones are counted as overflow."""
_MAX_NOISE_PATHS = 10_000
_MAX_OWNERSHIP = 1_000
_TIMELINE_BUCKETS = 60
_EXAMPLE_CHARS = 160
_INDEX = re.compile(r"\[\d+\]")
# A sampled match with no differences counts nothing (rollups hold the
# denominators), so it is skipped without parsing. Both markers are needed:
# an empty differences list rules out a nested value spelling the verdict.
_MATCH_MARK = b'"verdict":"match"'
_EMPTY_DIFFS_MARK = b'"differences":[]'
_BAD_RECORD = (KeyError, TypeError, ValueError, AttributeError)
_NEVER = float("inf")
_INT_TYPE = frozenset({int})
_BUCKET_KEYS = frozenset(str(i) for i in range(BUCKETS))
_TYPED = frozenset({"exchange", "rollup"})
_COUNTERS = operator.attrgetter(*COUNTED)


class _HistogramAcc:
    """Bucket counts keyed as in the JSONL (strings), turned into a LatencyHistogram at the end.

    Merging rollups is the report's hottest loop; keeping the string keys
    saves an ``int()`` per bucket per rollup.
    """

    __slots__ = ("buckets", "sum_ms")

    def __init__(self) -> None:
        self.buckets: dict[str, int] = {}
        self.sum_ms = 0.0

    @staticmethod
    def checked(data: Mapping[str, Any] | None) -> tuple[Mapping[str, int], float]:
        """The buckets and sum of one JSONL histogram; ValueError when malformed."""
        if not data:
            return {}, 0.0
        buckets = data.get("buckets") or {}
        # Set operations and min() run in C: much cheaper than a Python loop per bucket.
        counts = buckets.values()
        if not (
            buckets.keys() <= _BUCKET_KEYS
            and set(map(type, counts)) <= _INT_TYPE
            and min(counts, default=0) >= 0
        ):
            raise ValueError("bad latency buckets")
        sum_ms = data.get("sum_ms", 0.0)
        return buckets, float(sum_ms) if isinstance(sum_ms, int | float) else 0.0

    def add(self, buckets: Mapping[str, int], sum_ms: float) -> None:
        """Add checked buckets."""
        mine = self.buckets
        keys = buckets.keys()
        # Every step is a C loop: old counts, plus the new ones, written back.
        sums = map(operator.add, map(mine.get, keys, repeat(0)), buckets.values())
        mine.update(zip(keys, sums, strict=True))
        self.sum_ms += sum_ms

    def histogram(self) -> LatencyHistogram:
        """The core histogram these buckets make."""
        return LatencyHistogram.from_json({"buckets": self.buckets, "sum_ms": self.sum_ms})


class _RouteAcc:
    """Mutable per-route sums while reading."""

    __slots__ = ("candidate", "counters", "first_seen", "legacy", "skipped")

    def __init__(self) -> None:
        self.counters = [0] * len(COUNTED)
        self.skipped: dict[str, int] = {}
        self.legacy = _HistogramAcc()
        self.candidate = _HistogramAcc()
        self.first_seen: float | None = None


class _FingerprintAcc:
    """Mutable per-fingerprint count, first/last seen and the earliest example."""

    __slots__ = ("count", "domain", "example", "first", "last")

    def __init__(self, domain: str, ts: float, example: str) -> None:
        self.domain = domain
        self.count = 0
        self.first = ts
        self.last = ts
        self.example = example


def _example(record: ExchangeRecord, diff: Difference) -> str:
    legacy, candidate = raw_text(diff.legacy), raw_text(diff.candidate)
    text = f"{record.method} {record.path}: {legacy} -> {candidate}"
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 1] + "…"


def _quantiles(hist: LatencyHistogram) -> Quantiles:
    return Quantiles(hist.quantile(0.5), hist.quantile(0.95), hist.quantile(0.99))


@dataclass(frozen=True, slots=True)
class Windows:
    """Where each domain's window starts: ``since`` for all, else its own gate window."""

    until: float
    default_since: float
    by_domain: tuple[tuple[str, float], ...] = ()

    def __call__(self, domain: str) -> float:
        """The window start for ``domain``."""
        for name, since in self.by_domain:
            if name == domain:
                return since
        return self.default_since

    @property
    def earliest(self) -> float:
        """The earliest start of any window."""
        return min([self.default_since, *(since for _, since in self.by_domain)])


class Aggregator:
    """Feed it lines; ask it for the ``Findings``.

    ``since_for(domain)`` gives each domain's window start (its gate window,
    or ``--since``); a record counts when its time is in ``[since, until)``.
    An exchange's time is ``ts``; a rollup's is ``ts_start``.
    """

    def __init__(
        self,
        until: float,
        since_for: Callable[[str], float],
        timeline_start: float,
        max_fingerprints: int = MAX_FINGERPRINTS,
    ) -> None:
        self._until = until
        self._since_for = since_for
        self._since: dict[str, float] = {}
        self._timeline_start = timeline_start
        self._bucket_s = max(1.0, (until - timeline_start) / _TIMELINE_BUCKETS)
        self._max_fingerprints = max_fingerprints
        self._routes: dict[tuple[str, str], _RouteAcc] = {}
        self._fingerprints: dict[tuple[str, str, str, str], _FingerprintAcc] = {}
        self._noise: dict[tuple[str, str], int] = {}
        self._timelines: dict[str, list[list[int]]] = {}
        self._series = ChartSeries(until)
        self._last_structural: dict[str, float] = {}
        self._first_seen: dict[str, float] = {}
        self._ownership: deque[OwnershipChange] = deque(maxlen=_MAX_OWNERSHIP)
        self._semantic_overflow: dict[str, int] = {}
        self._files = 0
        self._records = 0
        self._malformed = 0
        self._unknown = 0
        self._outside = 0
        self._overflow = 0

    def feed(self, lines: Iterable[bytes], whole_file: bool = True) -> None:
        """Aggregate lines (a file, or a chunk of one); malformed ones are counted and skipped."""
        self._files += whole_file
        loads = orjson.loads
        exchange, rollup = self._exchange, self._rollup
        records = malformed = 0
        for line in lines:
            if _MATCH_MARK in line and _EMPTY_DIFFS_MARK in line:
                records += 1
                continue
            try:
                typed = decode_record(line)
                if isinstance(typed, ExchangeRecord):
                    exchange(typed)
                elif typed is not None:
                    rollup(typed)
                else:
                    record = loads(line)
                    kind = record.get("type")
                    if kind in _TYPED:
                        raise ValueError(f"malformed {kind} record")
                    if kind == "ownership":
                        self._ownership_change(record)
                    else:
                        self._unknown += 1
                records += 1
            except orjson.JSONDecodeError:
                malformed += 1 if line.strip() else 0
            except _BAD_RECORD:
                malformed += 1
        self._records += records
        self._malformed += malformed

    def merge(self, other: Aggregator) -> None:
        """Add another aggregator's state (from a worker) to this one, keeping the caps."""
        for key, theirs in other._routes.items():
            mine = self._routes.get(key)
            if mine is None:
                self._routes[key] = theirs
                continue
            mine.counters = [a + b for a, b in zip(mine.counters, theirs.counters, strict=True)]
            for reason, n in theirs.skipped.items():
                mine.skipped[reason] = mine.skipped.get(reason, 0) + n
            mine.legacy.add(theirs.legacy.buckets, theirs.legacy.sum_ms)
            mine.candidate.add(theirs.candidate.buckets, theirs.candidate.sum_ms)
        for fkey, fp in other._fingerprints.items():
            known = self._fingerprints.get(fkey)
            if known is None:
                if len(self._fingerprints) >= self._max_fingerprints:
                    self._overflow += fp.count
                    if fkey[1] == "semantic":
                        self._semantic_overflow[fp.domain] = (
                            self._semantic_overflow.get(fp.domain, 0) + fp.count
                        )
                    continue
                self._fingerprints[fkey] = fp
                continue
            known.count += fp.count
            known.last = max(known.last, fp.last)
            if fp.first < known.first:
                known.first, known.example = fp.first, fp.example
        for nkey, n in other._noise.items():
            if nkey in self._noise or len(self._noise) < _MAX_NOISE_PATHS:
                self._noise[nkey] = self._noise.get(nkey, 0) + n
        for domain, timeline in other._timelines.items():
            mine_t = self._timelines.setdefault(domain, [[0, 0] for _ in timeline])
            for point, add in zip(mine_t, timeline, strict=True):
                point[0] += add[0]
                point[1] += add[1]
        self._series.merge(other._series)
        for domain, ts in other._last_structural.items():
            self._last_structural[domain] = max(ts, self._last_structural.get(domain, ts))
        for domain, ts in other._first_seen.items():
            self._first_seen[domain] = min(ts, self._first_seen.get(domain, ts))
        for domain, n in other._semantic_overflow.items():
            self._semantic_overflow[domain] = self._semantic_overflow.get(domain, 0) + n
        self._since.update(other._since)
        self._ownership.extend(sorted(other._ownership, key=lambda c: c.ts))
        self._files += other._files
        self._records += other._records
        self._malformed += other._malformed
        self._unknown += other._unknown
        self._outside += other._outside
        self._overflow += other._overflow

    def _in_window(self, domain: str, ts: float) -> bool:
        since = self._since.get(domain)
        if since is None:
            since = self._since[domain] = self._since_for(domain)
        if since <= ts < self._until:
            first = self._first_seen.get(domain)
            if first is None or ts < first:
                self._first_seen[domain] = ts
            return True
        self._outside += 1
        return False

    def _rollup(self, record: RollupRecord) -> None:
        route, domain = record.route, record.domain
        start = parse_record_ts(record.ts_start)
        end = parse_record_ts(record.ts_end or record.ts_start)
        values: tuple[Any, ...] = _COUNTERS(record)
        if not all(type(v) is int and v >= 0 for v in values):
            raise ValueError("counters must be non-negative integers")
        skipped = record.skipped or {}
        if not all(type(n) is int for n in skipped.values()):
            raise ValueError("skipped counts must be integers")
        latency = record.latency or {}
        legacy = _HistogramAcc.checked(latency.get("legacy"))
        candidate = _HistogramAcc.checked(latency.get("candidate"))
        if not self._in_window(domain, start):
            return
        acc = self._routes.get((domain, route))
        if acc is None:
            acc = self._routes[(domain, route)] = _RouteAcc()
        counters = acc.counters
        for i, value in enumerate(values):
            counters[i] += value
        for reason, n in skipped.items():
            acc.skipped[reason] = acc.skipped.get(reason, 0) + n
        acc.legacy.add(*legacy)
        acc.candidate.add(*candidate)
        # The rollup only says a structural divergence happened by ts_end.
        if values[3] and end > self._last_structural.get(domain, float("-inf")):
            self._last_structural[domain] = min(end, self._until)
        timeline = self._timelines.get(domain)
        if timeline is None:
            timeline = self._timelines[domain] = [[0, 0] for _ in range(_TIMELINE_BUCKETS)]
        index = int((start - self._timeline_start) // self._bucket_s)
        point = timeline[min(max(index, 0), _TIMELINE_BUCKETS - 1)]
        point[0] += values[0]
        point[1] += values[2]
        self._series.add(domain, values, start, end)

    def _exchange(self, record: ExchangeRecord) -> None:
        route, domain = record.route, record.domain
        ts = parse_record_ts(record.ts)
        since = self._since.get(domain)
        if since is None or not since <= ts < self._until:
            if not self._in_window(domain, ts):
                return
        elif ts < self._first_seen.get(domain, _NEVER):
            self._first_seen[domain] = ts
        if "structural" in (record.classes or ()) and ts > self._last_structural.get(
            domain, float("-inf")
        ):
            self._last_structural[domain] = ts
        for diff in record.differences or ():
            cls, path = diff.cls, diff.path
            if diff.noise:
                self._noise_path(route, path)
                continue
            key = (route, cls, diff.kind, path)
            acc = self._fingerprints.get(key)
            if acc is None:
                if len(self._fingerprints) >= self._max_fingerprints:
                    self._overflow += 1
                    if cls == "semantic":
                        self._semantic_overflow[domain] = self._semantic_overflow.get(domain, 0) + 1
                    continue
                acc = self._fingerprints[key] = _FingerprintAcc(domain, ts, _example(record, diff))
            acc.count += 1
            if ts < acc.first:
                acc.first = ts
                acc.example = _example(record, diff)
            elif ts > acc.last:
                acc.last = ts

    def _noise_path(self, route: str, path: str) -> None:
        if not path.startswith("$"):
            return
        if "[" in path:
            path = _INDEX.sub("[*]", path)
        key = (route, path)
        count = self._noise.get(key)
        if count is not None:
            self._noise[key] = count + 1
        elif len(self._noise) < _MAX_NOISE_PATHS:
            self._noise[key] = 1

    def _ownership_change(self, record: dict[str, Any]) -> None:
        percent = record.get("percent")
        change = OwnershipChange(
            ts=parse_record_ts(record["ts"]),
            route=str(record["route"]),
            from_mode=str(record.get("from", "")),
            to_mode=str(record.get("to", "")),
            percent=float(percent) if isinstance(percent, int | float) else None,
            reason=str(record.get("reason") or ""),
            source=str(record.get("source") or ""),
            numbers={
                str(k): float(v)
                for k, v in (record.get("numbers") or {}).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            },
        )
        if change.ts < self._until:
            self._ownership.append(change)

    def evidence(self) -> Findings:
        """The aggregated evidence so far."""
        routes: list[RouteSummary] = []
        by_domain: dict[str, tuple[Counts, LatencyHistogram, LatencyHistogram]] = {
            domain: (Counts(), LatencyHistogram(), LatencyHistogram())
            for domain in self._first_seen
        }
        for (domain, route), acc in sorted(self._routes.items()):
            counts = Counts.of(dict(zip(COUNTED, acc.counters, strict=True)), acc.skipped)
            route_legacy, route_candidate = acc.legacy.histogram(), acc.candidate.histogram()
            latency = LatencySummary(_quantiles(route_legacy), _quantiles(route_candidate))
            routes.append(RouteSummary(route, domain, counts, latency))
            total, legacy, candidate = by_domain[domain]
            legacy.merge(route_legacy)
            candidate.merge(route_candidate)
            by_domain[domain] = (total + counts, legacy, candidate)
        domains = tuple(
            DomainSummary(
                domain=domain,
                since=self._since[domain],
                counts=counts,
                latency=LatencySummary(_quantiles(legacy), _quantiles(candidate)),
                last_structural=self._last_structural.get(domain),
                first_seen=self._first_seen.get(domain),
                timeline=self._timeline(domain),
                activity=self._series.activity(domain),
                days=self._series.days(domain, self._since[domain]),
            )
            for domain, (counts, legacy, candidate) in sorted(by_domain.items())
        )
        fingerprints = tuple(
            sorted(
                (
                    FingerprintSummary(
                        route,
                        acc.domain,
                        cls,
                        kind,
                        path,
                        acc.count,
                        acc.first,
                        acc.last,
                        acc.example,
                    )
                    for (route, cls, kind, path), acc in self._fingerprints.items()
                ),
                key=lambda f: (-f.count, f.key),
            )
        )
        noise = tuple(
            sorted(
                (NoisePath(route, path, n) for (route, path), n in self._noise.items()),
                key=lambda p: (p.route, -p.count, p.path),
            )
        )
        inputs = InputStats(
            files=self._files,
            records=self._records,
            malformed_lines=self._malformed,
            unknown_types=self._unknown,
            outside_window=self._outside,
            fingerprints_overflow=self._overflow,
        )
        notes = []
        if self._malformed:
            notes.append(f"{self._malformed} malformed lines skipped")
        if self._unknown:
            notes.append(f"{self._unknown} records of unknown type skipped")
        if self._overflow:
            notes.append(
                f"fingerprint table full ({self._max_fingerprints}): "
                f"{self._overflow} differences not tracked"
            )
        return Findings(
            source="files",
            until=self._until,
            routes=tuple(routes),
            domains=domains,
            fingerprints=fingerprints,
            semantic_overflow=dict(self._semantic_overflow),
            noise_paths=noise,
            ownership=tuple(sorted(self._ownership, key=lambda c: (c.ts, c.route))),
            inputs=inputs,
            notes=tuple(notes),
        )

    def _timeline(self, domain: str) -> tuple[TimelinePoint, ...]:
        buckets = self._timelines.get(domain)
        if buckets is None:
            return ()
        return tuple(
            TimelinePoint(self._timeline_start + i * self._bucket_s, compared, diverged)
            for i, (compared, diverged) in enumerate(buckets)
        )
