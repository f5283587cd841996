"""Header rewriting rules, as pure functions, including property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.http.headers import (
    HOP_BY_HOP,
    has_content_length,
    length_bits,
    request_headers,
    response_headers,
)

NAMES = st.sampled_from(
    [
        "Content-Type",
        "Set-Cookie",
        "X-A",
        "x-b",
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Via",
        "Cookie",
    ]
)
VALUES = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
HEADERS = st.lists(st.tuples(NAMES, VALUES), max_size=12)


def _end_to_end(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What reaches the client of ``headers`` on a 200, without the Via the proxy adds."""
    return [p for p in response_headers(headers, "1.1 p", 200) if p[0].lower() != "via"]


class TestEndToEnd:
    """Answers keep exactly the end-to-end headers, in order."""

    def test_connection_named_headers_are_removed(self) -> None:
        """A header named in Connection is hop-by-hop for this hop."""
        headers = [
            ("Connection", "X-Forwarded-For, close"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-A", "1"),
        ]
        assert _end_to_end(headers) == [("X-A", "1")]

    @given(HEADERS)
    def test_hop_by_hop_never_forwarded(self, headers: list[tuple[str, str]]) -> None:
        """No hop-by-hop header, nor one named in Connection, survives."""
        named = {
            t.strip().lower()
            for n, v in headers
            if n.lower() == "connection"
            for t in v.split(",")
            if t.strip()
        }
        kept = _end_to_end(headers)
        assert not {n.lower() for n, _ in kept} & (HOP_BY_HOP | named)

    @given(HEADERS)
    def test_end_to_end_headers_unchanged_and_ordered(self, headers: list[tuple[str, str]]) -> None:
        """Other headers keep value and relative order (the Set-Cookie multiset too)."""
        kept = _end_to_end(headers)
        it = iter(headers)
        assert all(pair in it for pair in kept), "kept headers are a subsequence of the input"
        cookies = [v for n, v in headers if n.lower() == "set-cookie"]
        connection_tokens = " ".join(v.lower() for n, v in headers if n.lower() == "connection")
        if "set-cookie" not in connection_tokens:
            assert [v for n, v in kept if n.lower() == "set-cookie"] == cookies


class TestRequestHeaders:
    """What legacy and the candidate receive."""

    def test_forwarding_headers_are_appended(self) -> None:
        """X-Forwarded-For grows the chain; Proto, Host and Via are set."""
        out = request_headers(
            [("X-Forwarded-For", "10.0.0.1"), ("Host", "shop.example"), ("Via", "1.0 edge")],
            client_ip="127.0.0.1",
            scheme="https",
            host="shop.example",
            via="1.1 shadowproxy",
        )
        values = dict(out)
        assert values["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"
        assert values["X-Forwarded-Proto"] == "https"
        assert values["X-Forwarded-Host"] == "shop.example"
        assert values["Via"] == "1.0 edge, 1.1 shadowproxy"
        assert values["Host"] == "shop.example"

    def test_upstream_host_replaces_client_host(self) -> None:
        """With host_header: upstream, the upstream's own Host is sent."""
        out = request_headers(
            [("Host", "shop.example")],
            client_ip="",
            scheme="http",
            host="shop.example",
            via="1.1 shadowproxy",
            upstream_host="10.1.1.1:9000",
        )
        assert [v for n, v in out if n == "Host"] == ["10.1.1.1:9000"]

    def test_client_shadow_headers_are_dropped(self) -> None:
        """X-Shadow-* headers are the proxy's own: a client's never reach an upstream."""
        out = request_headers(
            [("X-Shadow-Request", "1"), ("x-shadow-probe", "t"), ("X-Shadowed", "kept")],
            client_ip="",
            scheme="http",
            host=None,
            via="v",
        )
        assert [n for n, _ in out if n.lower().startswith("x-shadow")] == ["X-Shadowed"]

    def test_content_length_is_recomputed(self) -> None:
        """The client's Content-Length never reaches an upstream (framing is recomputed)."""
        out = request_headers(
            [("Content-Length", "5")], client_ip="", scheme="http", host=None, via="v"
        )
        assert "content-length" not in {n.lower() for n, _ in out}


class TestResponseHeaders:
    """What the client receives."""

    @given(HEADERS)
    def test_exactly_one_via(self, headers: list[tuple[str, str]]) -> None:
        """There is always exactly one Via line, ending with this proxy."""
        out = response_headers(headers, "1.1 shadowproxy", 200)
        vias = [v for n, v in out if n.lower() == "via"]
        assert len(vias) == 1
        assert vias[0].endswith("1.1 shadowproxy")

    @pytest.mark.parametrize("status", [204, 304])
    def test_bodiless_answers_carry_no_framing(self, status: int) -> None:
        """A 204 or 304 loses legacy's Content-Length; its other headers stay."""
        legacy = [("Content-Length", "5"), ("ETag", '"a"')]
        assert response_headers(legacy, "v", status) == [("ETag", '"a"'), ("Via", "v")]
        assert response_headers(legacy, "v", 200)[0] == ("Content-Length", "5")


class TestNameLengths:
    """The length test that spares a lower() for names no rule can match."""

    @given(st.lists(st.text(max_size=40), max_size=8), st.text(max_size=40))
    def test_a_name_passes_exactly_when_one_of_the_names_is_as_long(
        self, names: list[str], name: str
    ) -> None:
        bits = length_bits(names)
        assert bool((bits >> len(name)) & 1) == any(len(n) == len(name) for n in names)

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ([("content-length", "1")], True),
            ([("X-A", "1"), ("Content-LENGTH", "0")], True),
            ([("Content-Lengthy", "1"), ("Content-Type", "x")], False),
            ([], False),
        ],
    )
    def test_has_content_length_in_any_case(
        self, headers: list[tuple[str, str]], expected: bool
    ) -> None:
        assert has_content_length(headers) is expected
