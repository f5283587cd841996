"""How the report's JSON spells counts, rates and latencies.

Owns the counters of a domain, route or phase with their rates and 95%
upper bounds (``counts_json``), and latency quantiles in milliseconds with
the p99 ratio (``latency_json``). Imports the report's values.
"""

from __future__ import annotations

from typing import Any

from shadowproxy.report.summary import COUNTED, Counts, LatencySummary, Quantiles

__all__ = ["counts_json", "latency_json"]

_RATES = ("structural", "semantic", "timing", "noise", "errors")


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _quantiles(q: Quantiles) -> dict[str, float | None]:
    return {"p50": _ms(q.p50), "p95": _ms(q.p95), "p99": _ms(q.p99)}


def latency_json(latency: LatencySummary) -> dict[str, Any]:
    """Legacy and candidate p50/p95/p99 in milliseconds, and the p99 ratio."""
    ratio = latency.p99_ratio
    return {
        "legacy": _quantiles(latency.legacy),
        "candidate": _quantiles(latency.candidate),
        "p99_ratio": None if ratio is None else round(ratio, 4),
    }


def counts_json(counts: Counts) -> dict[str, Any]:
    """The counters, skips by reason, streams, and each rate with its 95% upper bound."""
    body: dict[str, Any] = {name: getattr(counts, name) for name in COUNTED}
    body["skipped"] = counts.skipped_total
    body["skipped_by_reason"] = dict(sorted(counts.skipped.items()))
    body["streams"] = counts.streams
    rates: dict[str, Any] = {}
    for name in _RATES:
        rate = counts.rate(name)
        rates[name] = {
            "rate": None if rate.value is None else round(rate.value, 6),
            "upper95": round(rate.upper95, 6),
        }
    body["rates"] = rates
    return body
