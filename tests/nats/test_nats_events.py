"""NATS events: legacy's and the candidate's matched by correlation id, divergences classified."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from shadowproxy.model import (
    EVENT_METHOD,
    EventFate,
    Exchange,
    Observation,
    Outcome,
    RequestFacts,
    Upstream,
    Verdict,
)
from shadowproxy.natsproxy.matching import Event, EventWindow
from shadowproxy.sinks.rollup import RouteTally
from tests.nats.nats_support import client, nats_proxy, nats_server
from tests.support import RunningProxy, eventually, records

ROUTE = "context.events.updated"
SHADOW = "shadow.context.events.updated"


def _section(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "server": {"url": url},
        "events": [
            {
                "subject": ROUTE,
                "candidate": SHADOW,
                "correlation": "$.correlation_id",
                "domain": "context",
                **extra,
            }
        ],
    }


def _event(correlation: str | None, **fields: object) -> bytes:
    body: dict[str, object] = {"state": "updated", **fields}
    if correlation is not None:
        body["correlation_id"] = correlation
    return orjson.dumps(body)


def _count(proxy: RunningProxy, side: str, result: str) -> float:
    return proxy.metric("shadowproxy_nats_events_total", route=ROUTE, side=side, result=result)


class TestMatching:
    """Events pair by correlation id, whatever their order on each subject."""

    async def test_matched_by_correlation_id(self, tmp_path: Path) -> None:
        """Three events in opposite orders on the two subjects: three matched pairs."""
        async with nats_server() as server, nats_proxy(tmp_path, _section(server.url)) as proxy:
            async with client(server.url) as publisher:
                for n in range(3):
                    await publisher.publish(ROUTE, _event(f"c{n}", n=n))
                for n in reversed(range(3)):
                    await publisher.publish(SHADOW, _event(f"c{n}", n=n))
                await publisher.flush()
                await eventually(
                    lambda: (
                        proxy.metric(
                            "shadowproxy_comparisons_total",
                            route=ROUTE,
                            domain="context",
                            verdict="match",
                        )
                        == 3
                    )
                )
            matched = (_count(proxy, "legacy", "matched"), _count(proxy, "candidate", "matched"))
        assert matched == (3, 3)
        found = records(tmp_path, ROUTE)
        assert sorted(r["client_request_id"] for r in found) == ["c0", "c1", "c2"]
        assert {(r["method"], r["verdict"]) for r in found} == {("EVENT", "match")}


class TestDivergences:
    """Each kind of NATS divergence gets its kind and class."""

    async def test_each_kind_classified(self, tmp_path: Path) -> None:
        """Drift, missing, extra, a candidate duplicate, a late pair, and an event without a key."""
        section = _section("", window_s=0.3, late_s=30)
        quick = {
            **section["events"][0],
            "subject": "quick",
            "legacy": "quick.legacy",
            "candidate": "quick.shadow",
            "window_s": 0.2,
            "late_s": 0.2,
        }
        async with nats_server() as server:
            section["server"] = {"url": server.url}
            section["events"].append(quick)
            async with nats_proxy(tmp_path, section) as proxy:
                async with client(server.url) as publisher:
                    await publisher.publish(ROUTE, _event("drift", total=10))
                    await publisher.publish(SHADOW, _event("drift", total=11))
                    twice = {"Nats-Msg-Id": "m-1"}
                    await publisher.publish(ROUTE, _event("dup"), headers=twice)
                    await publisher.publish(SHADOW, _event("dup"), headers=twice)
                    await publisher.publish(SHADOW, _event("dup"), headers=twice)
                    await publisher.publish(SHADOW, _event(None))
                    await publisher.publish("quick.legacy", _event("gone"))
                    await publisher.publish("quick.shadow", _event("new"))
                    await publisher.publish(ROUTE, _event("slow"))
                    await publisher.flush()
                    sent = time.monotonic()
                    # The late one goes out once the window has passed (time must pass).
                    await eventually(lambda: time.monotonic() - sent > 0.5)
                    await publisher.publish(SHADOW, _event("slow"))
                    await publisher.flush()
                    await eventually(
                        lambda: (
                            _count(proxy, "candidate", "late") == 1
                            and proxy.metric(
                                "shadowproxy_nats_events_total",
                                route="quick",
                                side="candidate",
                                result="extra",
                            )
                            == 1
                            and proxy.metric(
                                "shadowproxy_nats_events_total",
                                route="quick",
                                side="legacy",
                                result="missing",
                            )
                            == 1
                        )
                    )
                    uncorrelated = _count(proxy, "candidate", "uncorrelated")
                    duplicates = _count(proxy, "candidate", "duplicate")
        assert (uncorrelated, duplicates) == (1, 1)
        by_key: dict[str, list[list[tuple[str, str, str]]]] = {}
        for record in records(tmp_path):
            found = [(d["class"], d["kind"], d["path"]) for d in record["differences"]]
            by_key.setdefault(record["client_request_id"], []).append(found)
        assert by_key["drift"] == [[("semantic", "value", "$.total")]]
        assert sorted(by_key["dup"]) == [[], [("semantic", "event_duplicate", "$")]]
        assert by_key["slow"] == [[("timing", "event_late", "$")]]
        assert by_key["gone"] == [[("structural", "event_missing", "$")]]
        assert by_key["new"] == [[("structural", "event_extra", "$")]]


class TestBounds:
    """The matching window is bounded: beyond max_pending the oldest is dropped and counted."""

    async def test_window_drops_the_oldest(self, tmp_path: Path) -> None:
        """Ten unpaired events, three may wait: seven dropped; the rest end as missing."""
        section = _section("", window_s=0.2, late_s=0.2, max_pending=3)
        async with nats_server() as server:
            section["server"] = {"url": server.url}
            async with nats_proxy(tmp_path, section) as proxy:
                async with client(server.url) as publisher:
                    for n in range(10):
                        await publisher.publish(ROUTE, _event(f"k{n}"))
                    await publisher.flush()
                    await eventually(
                        lambda: (
                            (_count(proxy, "legacy", "dropped"), _count(proxy, "legacy", "missing"))
                            == (7, 3)
                        )
                    )
        missing = sorted(r["client_request_id"] for r in records(tmp_path, ROUTE))
        assert missing == ["k7", "k8", "k9"]


def _at(side: Upstream, key: str | None, at: float, msg_id: str | None = None) -> Event:
    return Event(side, key, msg_id, b"{}", (), at, at)


L, C = Upstream.LEGACY, Upstream.CANDIDATE


class TestEventWindow:
    """The matcher on its own: fates by arrival time, bounded memory."""

    @pytest.fixture
    def window(self) -> Iterator[EventWindow]:
        yield EventWindow(window_s=1.0, late_s=2.0, max_pending=4, max_bytes=1000)

    def test_on_time_and_late(self, window: EventWindow) -> None:
        """Within the window: matched; after it but within late_s: late."""
        assert window.add(_at(L, "a", 0.0)) == []
        (fate,) = window.add(_at(C, "a", 0.9))
        assert (fate.result, fate.lag_s) == (EventFate.MATCHED, pytest.approx(0.9))
        window.add(_at(C, "b", 1.0))
        (late,) = window.add(_at(L, "b", 2.5))
        assert late.result is EventFate.LATE

    def test_expiry_missing_and_extra(self, window: EventWindow) -> None:
        """Unpaired after window + late: legacy's missing, the candidate's extra."""
        window.add(_at(L, "a", 0.0))
        window.add(_at(C, "b", 0.5))
        assert window.expire(2.9) == []
        fates = [f.result for f in window.expire(3.6)]
        assert fates == [EventFate.MISSING, EventFate.EXTRA]
        assert len(window) == 0

    def test_several_events_per_key_pair_in_order(self, window: EventWindow) -> None:
        """Two events of one key pair with the other side's first and second."""
        first, second = _at(L, "a", 0.0), _at(L, "a", 0.1)
        window.add(first)
        window.add(second)
        (one,) = window.add(_at(C, "a", 0.2))
        (two,) = window.add(_at(C, "a", 0.3))
        assert (one.legacy, two.legacy) == (first, second)

    def test_duplicates_and_keyless(self, window: EventWindow) -> None:
        """A repeated Nats-Msg-Id on a side is a duplicate; no key is uncorrelated."""
        window.add(_at(C, "a", 0.0, "m1"))
        (dup,) = window.add(_at(C, "a", 0.1, "m1"))
        (keyless,) = window.add(_at(L, None, 0.2))
        assert (dup.result, keyless.result) == (EventFate.DUPLICATE, EventFate.UNCORRELATED)
        assert window.add(_at(L, "a", 0.3, "m1"))[0].result is EventFate.MATCHED

    def test_bounded(self, window: EventWindow) -> None:
        """At most max_pending wait; the oldest is dropped first."""
        dropped = [f for n in range(6) for f in window.add(_at(L, f"k{n}", n * 0.01))]
        assert [(f.result, f.legacy.key if f.legacy else None) for f in dropped] == [
            (EventFate.DROPPED, "k0"),
            (EventFate.DROPPED, "k1"),
        ]
        assert len(window) == 4

    def test_bounded_by_bytes(self) -> None:
        """Past max_bytes of waiting payload the oldest are dropped too."""
        window = EventWindow(window_s=1.0, late_s=1.0, max_pending=100, max_bytes=10)
        big = Event(L, "a", None, b"x" * 6, (), 0.0, 0.0)
        window.add(big)
        (dropped,) = window.add(Event(L, "b", None, b"y" * 6, (), 0.1, 0.1))
        assert (dropped.result, dropped.legacy) == (EventFate.DROPPED, big)
        assert len(window) == 1


class TestNoLatency:
    """A pair of events has no latency: the rollups' latency histograms take none of it."""

    def test_event_pairs_add_no_latency(self) -> None:
        """An EVENT exchange is counted as compared, its sides' 0 ms are not latencies."""
        facts = RequestFacts("e1", EVENT_METHOD, ROUTE, "", ROUTE, "context", 0.0)
        side = Observation(status=200, elapsed_s=0.0)
        tally = RouteTally()
        tally.add_verdict(Exchange(facts, side, side), Verdict(Outcome.MATCH))
        assert tally.counts["compared"] == 1
        assert (tally.legacy.count, tally.candidate.count) == (0, 0)
        request = RequestFacts("r1", "REQUEST", ROUTE, "", ROUTE, "context", 0.0)
        tally.add_verdict(Exchange(request, side, side), Verdict(Outcome.MATCH))
        assert (tally.legacy.count, tally.candidate.count) == (1, 1)
