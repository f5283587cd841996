"""Streaming aggregation of evidence records into bounded structures.

Owns the one pass over JSONL lines: per-route counters and merged latency
histograms from ``rollup`` records (the denominators), kept per phase stint
(``phases``), per-domain timelines, "clean since", ``ownership`` history and
``drill`` runs, what exchange records say per stint (structural ones the
known differences explain, semantic ones they do not), and feeding the other
tables:
fingerprints and noise paths (``differences``), the stretches rollups cover
(``coverage``) and the charts' series. Every verdict comes from the parsed
record, never from its text. A line that cannot be counted is logged with
its file and held against the gates of its domain (``damage``); a hostile
value refuses the whole report, naming the file and line. Memory depends on
routes, the caps and the window, never on the number of records. Imports
orjson and the report's own values.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from shadowproxy.histogram import LatencyHistogram
from shadowproxy.report.accumulators import (
    HistogramAcc,
    RouteAcc,
    check_counters,
)
from shadowproxy.report.coverage import CoverageLog
from shadowproxy.report.damage import DamageLog, describe, input_notes, marker_problem
from shadowproxy.report.differences import MAX_FINGERPRINTS, Differences
from shadowproxy.report.drills import DrillLog
from shadowproxy.report.errors import HostileValueError, ReportInputError
from shadowproxy.report.inputs import InputStats
from shadowproxy.report.known import KnownSet
from shadowproxy.report.phases import PhaseTable, quantiles, summarise
from shadowproxy.report.records import (
    ExchangeRecord,
    RollupRecord,
    decode_record,
    drill_summary,
    ownership_change,
    phase_key,
)
from shadowproxy.report.series import ChartSeries
from shadowproxy.report.sources import line_number, worker_of
from shadowproxy.report.summary import (
    ALL_GATES,
    ANY_DOMAIN,
    COUNTED,
    Counts,
    DomainSummary,
    Findings,
    LatencySummary,
    OwnershipChange,
    RouteSummary,
    TimelinePoint,
)
from shadowproxy.report.timeparse import parse_record_ts
from shadowproxy.report.windows import Windows

__all__ = ["MAX_DOMAINS", "MAX_ROUTES", "Aggregator"]

MAX_ROUTES = 10_000
"""Distinct (domain, route) pairs counted per reading process; later ones are uncounted."""
MAX_DOMAINS = 1_000
"""Distinct domains counted per reading process; later ones are uncounted."""
_MAX_OWNERSHIP = 1_000
_TIMELINE_BUCKETS = 60
_BAD_RECORD = (KeyError, TypeError, ValueError, AttributeError)
_NEVER = float("inf")
_TYPED = frozenset({"exchange", "rollup"})
_COUNTERS = operator.attrgetter(*COUNTED)
_UNCOUNTED = ("uncounted", "a record beyond the report's route or domain caps")


class _UncountedError(Exception):
    """A well-formed record the caps leave out; held against its domain's gates."""

    def __init__(self, domain: str) -> None:
        super().__init__(domain)
        self.domain = domain


class Aggregator:
    """Feed it lines; ask it for the ``Findings``.

    ``windows`` gives each domain's window (its gate window, or ``--since``)
    and gap tolerance. A record counts when its time is in ``[since,
    until)``: an exchange's ``ts``, a rollup's ``ts_start``. ``known``
    decides which exchanges' differences are documented.
    """

    def __init__(
        self,
        windows: Windows,
        max_fingerprints: int = MAX_FINGERPRINTS,
        known: KnownSet | None = None,
    ) -> None:
        until = windows.until
        self._windows = windows
        self._until = until
        self._since_for = windows
        self._since: dict[str, float] = {}
        self._timeline_start = timeline_start = windows.earliest
        self._bucket_s = max(1.0, (until - timeline_start) / _TIMELINE_BUCKETS)
        self._known = known or KnownSet()
        self._routes = PhaseTable(MAX_ROUTES)
        self._drills = DrillLog()
        self._differences = Differences(max_fingerprints)
        self._timelines: dict[str, list[list[int]]] = {}
        self._series = ChartSeries(until)
        self._coverage = CoverageLog(windows.join_gap)
        self._last_structural: dict[str, float] = {}
        self._first_seen: dict[str, float] = {}
        self._ownership: deque[OwnershipChange] = deque(maxlen=_MAX_OWNERSHIP)
        self._damage = DamageLog()
        self._duplicates: tuple[tuple[str, str], ...] = ()
        self._source = self._worker = "<lines>"
        self._start = 0
        self._files = 0
        self._records = 0
        self._unknown = 0
        self._outside = 0

    def feed(self, lines: Iterable[bytes], source: str = "<lines>", start: int = 0) -> None:
        """Aggregate the lines of ``source`` read from byte ``start`` (0: the whole file).

        A line that cannot be counted is logged and held against its
        domain's gates; a hostile value raises ReportInputError naming the
        file and line.
        """
        self._files += start == 0
        self._source, self._start, self._worker = source, start, worker_of(source)
        exchange, rollup, general = self._exchange, self._rollup, self._general
        loads = orjson.loads
        records = index = 0
        try:
            for index, line in enumerate(lines, 1):
                try:
                    typed = decode_record(line)
                    if isinstance(typed, ExchangeRecord):
                        exchange(typed)
                    elif typed is not None:
                        rollup(typed)
                    else:
                        general(loads(line))
                    records += 1
                except orjson.JSONDecodeError:
                    if line.strip():
                        self._unreadable(line, index)
                except _BAD_RECORD:
                    self._unreadable(line, index)
                except _UncountedError as exc:
                    self._damage.add(source, (start, index), _UNCOUNTED, (exc.domain, ALL_GATES))
        except HostileValueError as exc:
            where = line_number(Path(source), start, index) if start else index
            raise ReportInputError(f"{source}: line {where}", str(exc)) from None
        finally:
            self._records += records

    def note_duplicates(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record ``(file, same_as)`` pairs left unread because their content was read."""
        self._duplicates = (*self._duplicates, *pairs)

    def _general(self, record: Any) -> None:
        """A line the typed decoder did not take: another record type, or malformed."""
        kind = record.get("type") if isinstance(record, dict) else None
        if not isinstance(kind, str):
            raise ValueError("a record needs a string type")
        if kind in _TYPED:
            raise ValueError(f"malformed {kind} record")
        if kind == "ownership":
            change = ownership_change(record)
            if change.ts < self._until:
                self._ownership.append(change)
        elif kind == "drill":
            drill = drill_summary(record)
            if drill.ts < self._until:
                self._drills.add(drill)
        else:
            self._unknown += 1

    def _unreadable(self, line: bytes, index: int) -> None:
        problem = marker_problem(line)
        held: tuple[str, str] | None = (ANY_DOMAIN, ALL_GATES)
        if problem is None:
            described = describe(line)
            problem = ("malformed", f"malformed {described.kind or 'line'}")
            gates = described.gates
            domain = described.domain or ANY_DOMAIN
            held = None if gates is None else (domain, gates)
            if held is not None and described.when is not None:
                try:
                    ts = parse_record_ts(described.when, "ts")
                except ValueError:
                    ts = None
                since = self._timeline_start if domain == ANY_DOMAIN else self._since_for(domain)
                if ts is not None and not since <= ts < self._until:
                    held = None
        self._damage.add(self._source, (self._start, index), problem, held)

    def merge(self, other: Aggregator) -> None:
        """Add another aggregator's state (from a worker) to this one, keeping the caps."""
        self._routes.merge(other._routes)
        self._drills.merge(other._drills)
        self._differences.merge(other._differences)
        for domain, timeline in other._timelines.items():
            mine_t = self._timelines.setdefault(domain, [[0, 0] for _ in timeline])
            for point, add in zip(mine_t, timeline, strict=True):
                point[0] += add[0]
                point[1] += add[1]
        self._series.merge(other._series)
        self._coverage.merge(other._coverage)
        for domain, ts in other._last_structural.items():
            self._last_structural[domain] = max(ts, self._last_structural.get(domain, ts))
        for domain, ts in other._first_seen.items():
            self._first_seen[domain] = min(ts, self._first_seen.get(domain, ts))
        self._since.update(other._since)
        self._ownership.extend(sorted(other._ownership, key=lambda c: c.ts))
        self._damage.merge(other._damage)
        self._duplicates = (*self._duplicates, *other._duplicates)
        self._files += other._files
        self._records += other._records
        self._unknown += other._unknown
        self._outside += other._outside

    def _in_window(self, domain: str, ts: float) -> bool:
        """Whether ``ts`` is in the domain's window; _UncountedError past the domain cap."""
        since = self._since.get(domain)
        if since is None:
            since = self._since_for(domain)
            if len(self._since) < MAX_DOMAINS:
                self._since[domain] = since
            elif since <= ts < self._until:
                raise _UncountedError(ANY_DOMAIN)
        if since <= ts < self._until:
            if ts < self._first_seen.get(domain, _NEVER):
                self._first_seen[domain] = ts
            return True
        self._outside += 1
        return False

    def _rollup(self, record: RollupRecord) -> None:
        route, domain = record.route, record.domain
        start = parse_record_ts(record.ts_start, "ts_start")
        end = start if record.ts_end is None else parse_record_ts(record.ts_end, "ts_end")
        if end < start:
            raise ValueError("ts_end before ts_start")
        values: tuple[Any, ...] = _COUNTERS(record)
        check_counters(values, COUNTED)
        check_counters((record.streams,), ("streams",))
        compared, match, diverged, structural, _, _, noise, errors = values
        if compared != match + diverged + noise + errors:
            raise ValueError("compared is not match + diverged + noise + errors")
        skipped = RouteAcc.checked_skipped(record.skipped)
        latency = record.latency or {}
        if not isinstance(latency, dict):
            raise ValueError("latency must be an object")
        legacy = HistogramAcc.checked(latency.get("legacy"), "legacy")
        candidate = HistogramAcc.checked(latency.get("candidate"), "candidate")
        phase = phase_key(record)
        if not self._in_window(domain, start):
            return
        acc = self._routes.stint(domain, route, phase)
        if acc is None:
            raise _UncountedError(domain)
        acc.span(start, end)
        counters = acc.counters
        for i, value in enumerate(values):
            counters[i] += value
        acc.streams += record.streams
        if skipped:
            acc.add_skipped(skipped)
        acc.legacy.add(*legacy)
        acc.candidate.add(*candidate)
        # The rollup only says a structural divergence happened by ts_end.
        if structural and end > self._last_structural.get(domain, float("-inf")):
            self._last_structural[domain] = min(end, self._until)
        timeline = self._timelines.get(domain)
        if timeline is None:
            timeline = self._timelines[domain] = [[0, 0] for _ in range(_TIMELINE_BUCKETS)]
        index = int((start - self._timeline_start) // self._bucket_s)
        point = timeline[min(max(index, 0), _TIMELINE_BUCKETS - 1)]
        point[0] += compared
        point[1] += diverged
        self._series.add(domain, values, start, end)
        self._coverage.add(domain, self._worker, start, min(end, self._until))

    def _exchange(self, record: ExchangeRecord) -> None:
        if not record.differences and not record.classes:
            return  # a sampled match: the rollups count it, nothing else reads it
        domain = record.domain
        ts = parse_record_ts(record.ts, "ts")
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
        self._differences.add(record, domain, ts)
        classes = record.classes or ()
        if ("structural" in classes or "semantic" in classes) and not self._routes.described(
            record, domain, classes, self._known, ts
        ):
            raise _UncountedError(domain)

    def evidence(self) -> Findings:
        """The aggregated evidence so far."""
        routes: list[RouteSummary] = []
        by_domain: dict[str, tuple[Counts, LatencyHistogram, LatencyHistogram]] = {
            domain: (Counts(), LatencyHistogram(), LatencyHistogram())
            for domain in self._first_seen
        }
        for (domain, route), stints in self._routes.routes():
            totals, phases = summarise(stints)
            counts = totals.counts
            routes.append(
                RouteSummary(
                    route, domain, counts, totals.latency, phases, totals.structural_documented
                )
            )
            total, legacy, candidate = by_domain[domain]
            legacy.merge(totals.legacy)
            candidate.merge(totals.candidate)
            by_domain[domain] = (total + counts, legacy, candidate)
        domains = tuple(
            DomainSummary(
                domain=domain,
                since=self._since[domain],
                counts=counts,
                latency=LatencySummary(quantiles(legacy), quantiles(candidate)),
                last_structural=self._last_structural.get(domain),
                first_seen=self._first_seen.get(domain),
                timeline=self._timeline(domain),
                activity=self._series.activity(domain),
                days=self._series.days(domain, self._since[domain]),
                coverage=self._coverage.coverage(
                    domain, self._since[domain], self._until, self._windows.max_gap(domain)
                ),
            )
            for domain, (counts, legacy, candidate) in sorted(by_domain.items())
        )
        problems = self._damage.problems(
            lambda file, start, index: line_number(Path(file), start, index)
        )
        inputs = InputStats(
            files=self._files,
            records=self._records,
            malformed_lines=sum(
                self._damage.total(kind) for kind in ("malformed", "oversized", "truncated", "cut")
            ),
            unknown_types=self._unknown,
            outside_window=self._outside,
            fingerprints_overflow=self._differences.overflow,
            oversized_lines=self._damage.total("oversized"),
            uncounted_records=self._damage.total("uncounted"),
            duplicate_files=self._duplicates,
            problems=problems,
        )
        return Findings(
            source="files",
            until=self._until,
            routes=tuple(routes),
            domains=domains,
            fingerprints=self._differences.fingerprints(),
            semantic_overflow=dict(self._differences.semantic_overflow),
            noise_paths=self._differences.noise_paths(),
            ownership=tuple(sorted(self._ownership, key=lambda c: (c.ts, c.route))),
            inputs=inputs,
            notes=input_notes(
                inputs,
                self._duplicates,
                self._unknown,
                self._differences.capacity,
                (MAX_ROUTES, MAX_DOMAINS),
            ),
            unreadable=self._damage.unreadable(),
            drills=self._drills.drills(),
        )

    def _timeline(self, domain: str) -> tuple[TimelinePoint, ...]:
        buckets = self._timelines.get(domain)
        if buckets is None:
            return ()
        return tuple(
            TimelinePoint(self._timeline_start + i * self._bucket_s, compared, diverged)
            for i, (compared, diverged) in enumerate(buckets)
        )
