"""Fourteen days of generated evidence that tells a story, for the page and summary tests.

- ``orders``: hourly traffic in shadow; five structural divergences nine and
  a half days ago, clean since; one documented semantic difference; an SSE
  route whose every compared exchange is a stream, and a WebSocket route
  never compared (upgrades): not shadowed.
- ``payments``: two days without evidence; a one-hour outage at 100 %
  semantic divergence and a rate of 1 in 10,000 the rest of the time,
  undocumented, so both a huge and a tiny rate must show.
- ``search``: the candidate is three times slower, on enough evidence; at
  canary 25 % for the last 30 hours.
- ``catalog``: clean and sufficient: it passes; at canary 100 % for three days
  and drilled yesterday: ready for cutover.
- ``accounts``: a hostile route name (escape sequence, markup, bidi
  override, 200 characters) with too little evidence.

Records of ``payments`` and ``accounts`` carry no phase (written before
phases): their phase is ``unknown``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.report.report_factories import (
    difference,
    drill,
    exchange,
    phased,
    rollup,
    write_jsonl,
)

__all__ = ["HOSTILE_ROUTE", "KNOWN", "write_fortnight"]

HOSTILE_ROUTE = "/users/\x1b[31m<script>alert(1)</script>\u202e/" + "x" * 200
"""A route a client could make the proxy record (with catch-all routing)."""
KNOWN = """
- fingerprint: "/orders/{id}|semantic|value|$.updated_at"
  reason: clocks differ between the deployments
  owner: team-orders
"""
_HOURS = 14 * 24
_SHADOW_SINCE = timedelta(days=20)


def _hour(route: str, domain: str, hour: int, **counts: Any) -> dict[str, Any]:
    latency = counts.pop("latency", (5.0, 5.0))
    return rollup(
        route,
        domain,
        timedelta(hours=hour + 1),
        legacy_ms=[latency[0]] * 20,
        candidate_ms=[latency[1]] * 20,
        span=timedelta(hours=1),
        **counts,
    )


def _phase(record: dict[str, Any], hour: int, canary: float | None, hours: int) -> dict[str, Any]:
    """``record`` in shadow, or at canary ``canary`` % for the last ``hours`` hours."""
    if canary is None or hour >= hours:
        return phased(record, "shadow", since=_SHADOW_SINCE)
    return phased(record, "canary", canary, timedelta(hours=hours))


def write_fortnight(directory: Path) -> Path:
    """Write the evidence and the known-differences file into ``directory``; returns it."""
    records: list[dict[str, Any]] = []
    for hour in range(_HOURS):
        structural = 5 if hour == 228 else 0
        orders = [
            _hour("/orders/{id}", "orders", hour, match=200 - structural, structural=structural),
            _hour("/orders", "orders", hour, match=100),
            _hour("/orders/{id}/events", "orders", hour, match=20, streams=20),
            _hour("/orders/{id}/ws", "orders", hour, skipped={"upgrade": 3}),
        ]
        records.extend(_phase(record, hour, None, 0) for record in orders)
        if not 96 <= hour < 144:
            if hour == 30:
                records.append(_hour("/pay", "payments", hour, semantic=50))
            else:
                records.append(
                    _hour(
                        "/pay",
                        "payments",
                        hour,
                        match=9999 if hour % 24 == 0 else 100,
                        semantic=1 if hour % 24 == 0 else 0,
                    )
                )
        search = _hour("/search", "search", hour, match=20, latency=(5.0, 15.0))
        records.append(_phase(search, hour, 25.0, 30))
        records.append(_phase(_hour("/catalog", "catalog", hour, match=20), hour, 100.0, 72))
        if hour % 48 == 0:
            records.append(_hour(HOSTILE_ROUTE, "accounts", hour, match=3))
    records.append(
        exchange(
            "/orders/{id}",
            "orders",
            timedelta(hours=228, minutes=20),
            [difference("structural", "missing", "$.id", 7, None)],
        )
    )
    records.append(
        exchange(
            "/orders/{id}",
            "orders",
            timedelta(hours=3),
            [difference(path="$.updated_at", legacy="12:00", candidate="12:01")],
        )
    )
    records.append(
        exchange(
            "/pay",
            "payments",
            timedelta(hours=30, minutes=10),
            [difference(path="$.amount", legacy=10, candidate=10.5)],
            path="/pay?card=<b>4111</b>",
        )
    )
    records.append(drill("/catalog"))
    write_jsonl(directory / "shadow-fortnight.jsonl", records)
    (directory / "known.yaml").write_text(KNOWN)
    return directory
