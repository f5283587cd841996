"""An answer head read at once (``parse_head``) gives exactly what llhttp's callbacks report."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shadowproxy.http import h1_response
from shadowproxy.http.h1_response import UpstreamError, parse_head

_TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = [chr(c) for c in (9, 32, *range(33, 127), *range(128, 256))]
"""What a field value may hold, plus control characters llhttp refuses."""
_NOISE = ["\r", "\n", "\x00", "\x01", "\x7f", ":", " "]
_PROPERTY = settings(
    max_examples=400,
    deadline=None,
    # Drawing a few short strings is cheap: when it is slow, it is the machine that is loaded
    # (other suites run at the same time), not the strategy.
    suppress_health_check=[HealthCheck.too_slow],
)


class _Callbacks:
    """llhttp's own view of a head: the reason phrase and each field, as before parse_head."""

    def __init__(self) -> None:
        self.reason = b""
        self.fields: list[tuple[str, str]] = []
        self.complete = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.complete = True


def _llhttp(head: bytes) -> _Callbacks | None:
    """What llhttp's callbacks reported for ``head``, or None when it refused it."""
    seen = _Callbacks()
    try:
        httptools.HttpResponseParser(seen).feed_data(head)
    except httptools.HttpParserError:
        return None
    return seen if seen.complete else None


def _check(head: bytes) -> None:
    """Whenever llhttp accepts ``head``, ``parse_head`` reads the same reason and fields."""
    seen = _llhttp(head)
    if seen is None:
        return
    assert parse_head(head, 0)[1:] == (seen.reason.decode("latin-1"), tuple(seen.fields))


_fields = st.lists(
    st.tuples(
        st.text(_TOKEN, min_size=1, max_size=12),
        st.text(st.sampled_from(_VALUE + _NOISE[:3]), max_size=20),
    ),
    max_size=8,
)


class TestParseHead:
    """Property: equal to llhttp's callbacks on every head llhttp accepts."""

    @_PROPERTY
    @given(
        version=st.sampled_from(["1.1", "1.0"]),
        status=st.integers(100, 599),
        reason=st.text(st.sampled_from(_VALUE + _NOISE), max_size=12),
        fields=_fields,
    )
    def test_generated_heads(
        self, version: str, status: int, reason: str, fields: list[tuple[str, str]]
    ) -> None:
        """Reasons and values with spaces, tabs, obs-text and control bytes; repeated names."""
        head = f"HTTP/{version} {status} {reason}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\n"
        _check(head.encode("latin-1"))

    @_PROPERTY
    @given(
        data=st.binary(max_size=80),
        at=st.integers(0, 200),
    )
    # Empty lines before the status line, which llhttp skips: once read as an empty head.
    @example(data=b"\r\n\r\n", at=0)
    @example(data=b"\r\n\n\r\n\r\n", at=0)
    @example(data=b"\r\n\r\n", at=15)
    def test_mutated_heads(self, data: bytes, at: int) -> None:
        """Arbitrary bytes spliced into a valid head: llhttp refuses, or both agree."""
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A:  a b \r\n\r\n"
        cut = at % len(head)
        _check(head[:cut] + data + head[cut:])

    @pytest.mark.parametrize(
        "head",
        [
            b"HTTP/1.1 200\r\nA: x\r\n\r\n",
            b"HTTP/1.1 200 \r\nA:  \r\n\r\n",
            b"HTTP/1.1 200 O\tK\r\nA:\tx \t\r\nB:\r\nA: y\r\n\r\n",
            b"HTTP/1.0 204 No Content\r\n\r\n",
            b"\r\n\nHTTP/1.1 200 OK\r\nA: x\r\n\r\n",
        ],
        ids=[
            "no-reason",
            "empty-reason-blank-value",
            "tabs-and-repeats",
            "no-fields",
            "empty-lines",
        ],
    )
    def test_edges(self, head: bytes) -> None:
        """No reason, an all-blank value, tabs, repeated names, no fields, empty lines first."""
        assert _llhttp(head) is not None
        _check(head)

    def test_where_the_head_ends(self) -> None:
        """The offset just past the blank line, after a 100 Continue and empty lines."""
        raw = b"HTTP/1.1 100 Continue\r\n\r\n\r\nHTTP/1.1 200 OK\r\nA: x\r\n\r\nbody"
        assert parse_head(raw, 0)[0] == 25
        assert parse_head(raw, 25) == (len(raw) - 4, "OK", (("A", "x"),))

    def test_a_line_that_is_no_field_is_refused(self) -> None:
        """Never reached through llhttp; a line without a colon is an error, not dropped."""
        with pytest.raises(UpstreamError):
            parse_head(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", 0)


class TestRememberedHeads:
    def test_a_head_read_again_is_answered_from_memory(self) -> None:
        """The same bytes give the very fields read before; one byte more is read afresh."""
        head = b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 03:00:00 GMT\r\nA: x\r\n\r\n"
        first = parse_head(b"junk" + head, 4)
        again = parse_head(head + b"body", 0)
        assert again[1:] == first[1:] and again[2] is first[2]
        assert (first[0], again[0]) == (4 + len(head), len(head))
        later = parse_head(head.replace(b"03:00:00", b"03:00:01"), 0)
        assert later[2] is not first[2]
        assert later[2][0] == ("Date", "Mon, 07 Dec 2026 03:00:01 GMT")

    def test_bounded_and_only_small_heads(self) -> None:
        for n in range(200):
            parse_head(b"HTTP/1.1 200 OK\r\nN: %d\r\n\r\n" % n, 0)
        assert 0 < len(h1_response._HEADS) <= 64
        big = b"HTTP/1.1 200 OK\r\nBig: " + b"x" * 4096 + b"\r\n\r\n"
        assert parse_head(big, 0)[2] is not parse_head(big, 0)[2]

    def test_a_refused_head_is_refused_every_time(self) -> None:
        for _ in range(2):
            with pytest.raises(UpstreamError):
                parse_head(b"HTTP/1.1 200 OK\r\nstill no colon\r\n\r\n", 0)
