"""Fleet mode: the same evidence, read from Prometheus instead of JSONL files.

Owns the PromQL over the contract metrics and turning the answers into an
``Findings`` the gates evaluate like any other:

- ``shadowproxy_comparisons_total{route,domain,verdict}`` gives compared, match,
  diverged, noise and errors;
- ``shadowproxy_divergences_total{route,domain,class}`` gives structural, semantic, timing;
- ``shadowproxy_upstream_latency_seconds_bucket{upstream,route,le}`` gives
  p50/p95/p99 through ``histogram_quantile`` (per route, and per domain by
  summing its routes);
- ``shadowproxy_upstream_errors_total{upstream,reason}`` is shown as a note;
- coverage: how many steps of ``max_gap / 2`` of each domain's window have
  samples of its ``shadowproxy_comparisons_total``, and the first and last
  (subqueries), so a window Prometheus holds only part of is not covered.

Every query is an instant query at ``until`` over ``increase(...[window])``.
Prometheus has no fingerprints, noise paths or ownership history, so those
parts of a report are empty in fleet mode and a note says so. Uses urllib.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.summary import (
    Counts,
    Coverage,
    DomainSummary,
    Findings,
    Gap,
    LatencySummary,
    Quantiles,
    RouteSummary,
)
from shadowproxy.report.timeparse import format_duration
from shadowproxy.report.windows import Windows

__all__ = ["collect_fleet", "steps_coverage"]

_QUANTILES = (0.5, 0.95, 0.99)
_VERDICTS = {"match": "match", "diverged": "diverged", "noise": "noise", "error": "errors"}
_TIMEOUT_S = 30.0
_NOTE = (
    "fleet mode: Prometheus has no fingerprints, noise paths, ownership history or "
    "'clean since'; run the report on the JSONL files for those"
)

Sample = tuple[dict[str, str], float | None]
"""One series of an instant-vector answer: its labels and value (None for NaN)."""


class _Prometheus:
    """A minimal /api/v1/query client bound to one base URL and evaluation time."""

    def __init__(self, url: str, at: float) -> None:
        self._url = url.rstrip("/")
        self._at = at

    def query(self, promql: str) -> list[Sample]:
        params = urllib.parse.urlencode({"query": promql, "time": f"{self._at:.3f}"})
        try:
            with urllib.request.urlopen(
                f"{self._url}/api/v1/query?{params}", timeout=_TIMEOUT_S
            ) as response:
                body: Any = json.load(response)
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            raise ReportInputError(self._url, f"query failed ({detail}): {promql}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReportInputError(self._url, f"cannot query Prometheus ({reason})") from None
        if body.get("status") != "success" or body["data"]["resultType"] != "vector":
            raise ReportInputError(self._url, f"unexpected answer to {promql}")
        return [
            (dict(item["metric"]), _number(item["value"][1])) for item in body["data"]["result"]
        ]


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.load(exc).get("error", exc.reason))
    except ValueError:
        return str(exc.reason)


def _number(text: str) -> float | None:
    value = float(text)
    return None if value != value else value


def _range(seconds: float) -> str:
    """A PromQL range of ``seconds``, to the millisecond (``1400ms``, never rounded to 1s)."""
    return f"{max(1, round(seconds * 1000))}ms"


def _regex_of(routes: Iterable[str]) -> str:
    # re.escape's output is valid RE2; json.dumps makes it a PromQL string literal.
    return json.dumps("|".join(re.escape(route) for route in sorted(routes)))


def _latency(
    samples: dict[float, list[Sample]], keep: Callable[[dict[str, str]], bool]
) -> dict[str, Quantiles]:
    values: dict[str, dict[float, float | None]] = {"legacy": {}, "candidate": {}}
    for q, series in samples.items():
        for labels, value in series:
            upstream = labels.get("upstream", "")
            if upstream in values and keep(labels):
                values[upstream][q] = None if value is None else value * 1000.0
    return {
        upstream: Quantiles(*(by_q.get(q) for q in _QUANTILES)) for upstream, by_q in values.items()
    }


def collect_fleet(url: str, windows: Windows) -> Findings:
    """Findings for every route Prometheus knows, each domain over its own window."""
    until = windows.until
    window_for = windows.span
    prometheus = _Prometheus(url, until)
    counters: dict[tuple[str, str], dict[str, float]] = {}
    for window in windows.spans:
        span = _range(window)
        comparisons = prometheus.query(
            f"sum by (route, domain, verdict) (increase(shadowproxy_comparisons_total[{span}]))"
        )
        divergences = prometheus.query(
            f"sum by (route, domain, class) (increase(shadowproxy_divergences_total[{span}]))"
        )
        streams = prometheus.query(
            f"sum by (route, domain) (increase(shadowproxy_streams_total[{span}]))"
        )
        named = [
            (labels, value, _series_name(labels)) for labels, value in comparisons + divergences
        ]
        named.extend((labels, value, "streams") for labels, value in streams)
        for labels, value, name in named:
            domain, route = labels.get("domain", ""), labels.get("route", "")
            if window_for(domain) != window or value is None:
                continue
            if name:
                sums = counters.setdefault((domain, route), {})
                sums[name] = sums.get(name, 0.0) + value
    routes: list[RouteSummary] = []
    by_domain: dict[str, list[str]] = {}
    for domain, route in sorted(counters):
        by_domain.setdefault(domain, []).append(route)
    route_latency = _route_latency(prometheus, by_domain, window_for)
    for (domain, route), sums in sorted(counters.items()):
        counts = _counts(sums)
        legacy, candidate = route_latency.get((domain, route), (Quantiles(), Quantiles()))
        routes.append(RouteSummary(route, domain, counts, LatencySummary(legacy, candidate)))
    coverage = _coverage(prometheus, windows, by_domain)
    domains = []
    for domain, names in sorted(by_domain.items()):
        window = window_for(domain)
        span = _range(window)
        per_q = {
            q: prometheus.query(
                f"histogram_quantile({q}, sum by (upstream, le) (increase("
                f"shadowproxy_upstream_latency_seconds_bucket{{route=~{_regex_of(names)}}}"
                f"[{span}])))"
            )
            for q in _QUANTILES
        }
        latency = _latency(per_q, lambda labels: True)
        total = Counts()
        for summary in routes:
            if summary.domain == domain:
                total = total + summary.counts
        domains.append(
            DomainSummary(
                domain=domain,
                since=until - window,
                counts=total,
                latency=LatencySummary(latency["legacy"], latency["candidate"]),
                last_structural=None,
                first_seen=None,
                coverage=coverage.get(domain),
            )
        )
    notes = [_NOTE, *_upstream_error_notes(prometheus, window_for(""))]
    return Findings(
        source="prometheus",
        until=until,
        routes=tuple(routes),
        domains=tuple(domains),
        notes=tuple(notes),
    )


def _series_name(labels: dict[str, str]) -> str:
    """The counter a comparisons or divergences series adds to ("" for an unknown one)."""
    return _VERDICTS.get(labels.get("verdict", "")) or labels.get("class", "")


def _counts(sums: dict[str, float]) -> Counts:
    whole = {name: round(value) for name, value in sums.items()}
    whole["compared"] = sum(whole.get(name, 0) for name in _VERDICTS.values())
    return Counts.of(whole)


def _route_latency(
    prometheus: _Prometheus, by_domain: dict[str, list[str]], window_for: Callable[[str], float]
) -> dict[tuple[str, str], tuple[Quantiles, Quantiles]]:
    found: dict[tuple[str, str], tuple[Quantiles, Quantiles]] = {}
    spans = {window_for(domain) for domain in by_domain}
    for window in sorted(spans):
        span = _range(window)
        per_q = {
            q: prometheus.query(
                f"histogram_quantile({q}, sum by (route, upstream, le) (increase("
                f"shadowproxy_upstream_latency_seconds_bucket[{span}])))"
            )
            for q in _QUANTILES
        }
        for domain, names in by_domain.items():
            if window_for(domain) != window:
                continue
            for route in names:
                latency = _latency(per_q, _route_is(route))
                found[(domain, route)] = (latency["legacy"], latency["candidate"])
    return found


def _route_is(route: str) -> Callable[[dict[str, str]], bool]:
    return lambda labels: labels.get("route") == route


def _upstream_error_notes(prometheus: _Prometheus, window: float) -> list[str]:
    span = _range(window)
    samples = prometheus.query(
        f"sum by (upstream, reason) (increase(shadowproxy_upstream_errors_total[{span}]))"
    )
    parts = [
        f"{labels.get('upstream', '?')}/{labels.get('reason', '?')}: {round(value)}"
        for labels, value in sorted(samples, key=lambda s: sorted(s[0].items()))
        if value
    ]
    return [f"upstream errors over {format_duration(window)}: " + ", ".join(parts)] if parts else []


def _coverage(
    prometheus: _Prometheus, windows: Windows, domains: Iterable[str]
) -> dict[str, Coverage]:
    """Each domain's coverage, from the steps of its window that have samples."""
    wanted: dict[tuple[int, int], list[str]] = {}
    for domain in domains:
        span = max(1, round(windows.span(domain) * 1000))
        # Half the gap tolerance, and never so coarse that the window holds no step.
        step = max(1, math.floor(min(windows.max_gap(domain) * 1000, span) / 2))
        wanted.setdefault((span, step), []).append(domain)
    found: dict[str, Coverage] = {}
    present = "sum by (domain) (shadowproxy_comparisons_total)"
    for (span, step), names in sorted(wanted.items()):
        sub = f"[{span}ms:{step}ms]"
        counts = _by_domain(prometheus.query(f"count_over_time(({present}){sub})"))
        firsts = _by_domain(prometheus.query(f"min_over_time(timestamp({present}){sub})"))
        lasts = _by_domain(prometheus.query(f"max_over_time(timestamp({present}){sub})"))
        for domain in names:
            found[domain] = steps_coverage(
                windows.until - span / 1000,
                windows.until,
                step / 1000,
                windows.max_gap(domain),
                counts.get(domain, 0.0),
                firsts.get(domain),
                lasts.get(domain),
            )
    return found


def _by_domain(samples: list[Sample]) -> dict[str, float]:
    return {labels.get("domain", ""): value for labels, value in samples if value is not None}


def steps_coverage(
    since: float,
    until: float,
    step: float,
    max_gap: float,
    present: float,
    first: float | None,
    last: float | None,
) -> Coverage:
    """Coverage from ``present`` sampled steps (aligned to multiples of ``step``) of a window."""
    if first is None or last is None or not present:
        gaps = [Gap(since, until, None, "window")]
        return Coverage(since, until, max_gap, False, None, None, 0.0, tuple(gaps), len(gaps))
    gaps = []
    if first - since > max_gap:
        gaps.append(Gap(since, first, None, "start"))
    if until - last > max_gap:
        gaps.append(Gap(last, until, None, "end"))
    missing = (round((last - first) / step) + 1 - present) * step
    if missing > max_gap:
        gaps.append(Gap(first, first + missing, None, "missing"))
    gaps.sort(key=lambda g: g.start - g.end)
    covered_s = min(present * step, until - since)
    return Coverage(since, until, max_gap, not gaps, first, last, covered_s, tuple(gaps), len(gaps))
