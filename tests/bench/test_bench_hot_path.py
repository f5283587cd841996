"""Regression guard for per-request CPU: the comparison engine and the header filter.

pytest-benchmark figures, no thresholds: the suite runs each body once under
the project's default ``--benchmark-disable`` (so it still checks behaviour),
and prints timings with ``pytest tests/bench --benchmark-enable``. The
side-by-side proxy benchmark is ``bench/bench_proxy.py``, not a test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from shadowproxy.compare import Comparator, CompareRules
from shadowproxy.compare.recall import MAX_ENTRIES
from shadowproxy.http.headers import request_headers, response_headers
from shadowproxy.model import Exchange, Outcome, Verdict
from tests.compare.factories import make_exchange, make_observation

Benchmark = Callable[..., Any]

_LEGACY_HEADERS = (
    ("Server", "legacy"),
    ("Date", "Mon, 23 Nov 2026 13:40:01 GMT"),
    ("Cache-Control", "no-store"),
    ("X-Request-Id", "abc"),
)
_CANDIDATE_HEADERS = (
    ("Server", "candidate"),
    ("Date", "Mon, 23 Nov 2026 13:40:02 GMT"),
    ("Cache-Control", "no-store"),
    ("X-Request-Id", "abc"),
)
# A browser-like request: what the hot path filters on every request.
_CLIENT_HEADERS = [
    ("Host", "shop.example"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"),
    ("Accept", "application/json, text/plain, */*"),
    ("Accept-Language", "en-GB,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Connection", "keep-alive"),
    ("Cookie", "session=abc; theme=dark"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("Via", "1.1 edge"),
    ("Content-Length", "0"),
]
_LEGACY_RESPONSE = [
    ("Server", "nginx"),
    ("Date", "Mon, 23 Nov 2026 13:40:01 GMT"),
    ("Content-Type", "application/json"),
    ("Content-Length", "51200"),
    ("Connection", "keep-alive"),
    ("Keep-Alive", "timeout=60"),
    ("Cache-Control", "no-store"),
    ("Set-Cookie", "a=1; Path=/"),
    ("Set-Cookie", "b=2; Path=/"),
]


def _order(size: int, changed_index: int | None = None) -> bytes:
    """A JSON order of at least ``size`` bytes; one item's price differs when asked."""
    items: list[dict[str, object]] = []
    while len(json.dumps({"order": 42, "items": items})) < size:
        index = len(items)
        price = 0.5 if index == changed_index else 9.99 + index
        items.append({"id": index, "sku": f"SKU-{index:06d}", "price": price, "tags": ["a", "b"]})
    return json.dumps({"order": 42, "items": items}).encode()


def _exchange(legacy: bytes, candidate: bytes) -> Exchange:
    return make_exchange(
        make_observation(body=legacy, headers=_LEGACY_HEADERS),
        make_observation(body=candidate, headers=_CANDIDATE_HEADERS),
    )


@pytest.fixture(scope="module")
def large_pair() -> tuple[bytes, bytes]:
    """A 50 KB order and the same order with one price changed."""
    return _order(50_000), _order(50_000, changed_index=57)


class TestCompareIdentical:
    """A byte-identical pair takes the fast path: no decoding, no parsing."""

    def test_small_identical_pair(self, benchmark: Benchmark) -> None:
        """A small identical JSON pair is a match with no differences."""
        body = b'{"id": 42, "status": "shipped", "total": 10.5}'
        exchange, rules, comparator = _exchange(body, body), CompareRules(), Comparator()
        verdict = benchmark(comparator.compare, exchange, rules)
        assert (verdict.outcome, verdict.differences) == (Outcome.MATCH, ())

    def test_large_identical_pair(
        self, benchmark: Benchmark, large_pair: tuple[bytes, bytes]
    ) -> None:
        """A 50 KB identical pair is a match with no differences."""
        legacy, _ = large_pair
        exchange, rules, comparator = _exchange(legacy, legacy), CompareRules(), Comparator()
        verdict = benchmark(comparator.compare, exchange, rules)
        assert (verdict.outcome, verdict.differences) == (Outcome.MATCH, ())


class TestCompareOneField:
    """A 50 KB pair differing in one field is parsed, diffed and classified."""

    def test_one_field_diff(self, benchmark: Benchmark, large_pair: tuple[bytes, bytes]) -> None:
        """Exactly the changed price is reported, as a semantic divergence. The price
        differs in every call (more pairs than the comparator remembers), so each one
        is parsed: what a field that varies per request costs."""
        legacy, candidate = large_pair
        exchanges = [
            _exchange(
                legacy, candidate.replace(b'"price": 0.5,', f'"price": {cents / 100},'.encode())
            )
            for cents in range(1, 2 * MAX_ENTRIES)
        ]
        turn = iter(range(10**9))
        rules, comparator = CompareRules(), Comparator()

        def compare() -> Verdict:
            return comparator.compare(exchanges[next(turn) % len(exchanges)], rules)

        verdict = benchmark(compare)
        assert verdict.outcome is Outcome.DIVERGED
        assert [d.path for d in verdict.differences] == ["$.items[57].price"]

    def test_one_field_diff_repeated(
        self, benchmark: Benchmark, large_pair: tuple[bytes, bytes]
    ) -> None:
        """The same differing pair again and again: its body differences come from the
        comparator's recall (two SHA-256 digests, no parse)."""
        legacy, candidate = large_pair
        exchange, rules, comparator = _exchange(legacy, candidate), CompareRules(), Comparator()
        verdict = benchmark(comparator.compare, exchange, rules)
        assert [d.path for d in verdict.differences] == ["$.items[57].price"]


class TestHeaderFilter:
    """The hot path's header rewriting, on a browser-sized header set."""

    def test_request_headers(self, benchmark: Benchmark) -> None:
        """Hop-by-hop and framing headers go; X-Forwarded-* and Via are rebuilt."""
        pairs = benchmark(
            request_headers,
            _CLIENT_HEADERS,
            client_ip="127.0.0.1",
            scheme="http",
            host="shop.example",
            via="1.1 shadowproxy",
        )
        names = [name.lower() for name, _ in pairs]
        assert "connection" not in names
        assert "content-length" not in names
        assert ("X-Forwarded-For", "203.0.113.7, 127.0.0.1") in pairs
        assert pairs[-1] == ("Via", "1.1 edge, 1.1 shadowproxy")

    def test_response_headers(self, benchmark: Benchmark) -> None:
        """Legacy's end-to-end headers pass in order, both Set-Cookie lines kept."""
        pairs = benchmark(response_headers, _LEGACY_RESPONSE, "1.1 shadowproxy", 200)
        assert [v for k, v in pairs if k == "Set-Cookie"] == ["a=1; Path=/", "b=2; Path=/"]
        assert ("Keep-Alive", "timeout=60") not in pairs
        assert pairs[-1] == ("Via", "1.1 shadowproxy")
