"""What a client's request becomes upstream, byte for byte, on the lean and the handed-over path.

Header bytes pass unchanged (latin-1 both ways, never re-encoded); the
proxy's own ``X-Shadow-*`` headers are its own (a client's are stripped, the
probe answer needs the admin token); a missing or empty Host, and transfer
codings other than chunked, are refused before any upstream sees them; a
``#fragment`` never leaves the proxy. Every request is sent twice over raw
sockets: as an ordinary request the lean server takes, and with an empty
chunked body, which hands the connection to aiohttp's server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.wire import Upstreams, header_lines, proxied, status

TOKEN = "wire-token-7f3a"
PATHS = ["lean", "handed-over"]


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    """One proxy process with an admin token, shared by this module's tests."""
    work: Path = tmp_path_factory.mktemp("wire-requests")
    with proxied(work, config=f"admin_token: {TOKEN}\n") as running:
        yield running


def request(path: str, target: bytes, *fields: bytes, version: bytes = b"1.1") -> bytes:
    """A GET with ``fields`` (Host included only when given) that closes after its answer.

    ``path`` "handed-over" adds an empty chunked body, which the lean server hands over.
    """
    lines = [b"GET " + target + b" HTTP/" + version, *fields, b"Connection: close"]
    body = b""
    if path == "handed-over":
        lines.append(b"Transfer-Encoding: chunked")
        body = b"0\r\n\r\n"
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def last_heads(upstreams: Upstreams, seen: tuple[int, int]) -> tuple[bytes, bytes]:
    """The next request head legacy and the candidate received after ``seen``."""
    upstreams.legacy.wait_lines(seen[0] + 1)
    upstreams.candidate.wait_lines(seen[1] + 1)
    return upstreams.legacy.heads[seen[0]], upstreams.candidate.heads[seen[1]]


def counts(upstreams: Upstreams) -> tuple[int, int]:
    return len(upstreams.legacy.lines), len(upstreams.candidate.lines)


def shadow_lines(head: bytes) -> list[bytes]:
    return [line for line in header_lines(head) if line.lower().startswith(b"x-shadow-")]


@pytest.mark.parametrize("path", PATHS)
class TestHeaderBytes:
    """Request header bytes reach legacy and the candidate exactly as the client sent them."""

    def test_utf8_and_latin1_bytes_unchanged(self, upstreams: Upstreams, path: str) -> None:
        """UTF-8 and Latin-1 bytes in Host and other values arrive unchanged on both sides."""
        fields = (b"Host: h\xc3\xa9.example", b"X-Name: Jos\xc3\xa9", b"X-Latin: caf\xe9 cr\xe8me")
        seen = counts(upstreams)
        answer, _ = upstreams.send(request(path, b"/bytes", *fields))
        assert status(answer) == 200
        for head in last_heads(upstreams, seen):
            lines = header_lines(head)
            for field in fields:
                assert field in lines, (field, lines)


@pytest.mark.parametrize("path", PATHS)
class TestShadowHeaders:
    """``X-Shadow-*`` headers are the proxy's: a client can neither send nor read them."""

    def test_client_shadow_headers_are_stripped(self, upstreams: Upstreams, path: str) -> None:
        """Legacy sees no X-Shadow-* header; the candidate exactly one, the proxy's."""
        seen = counts(upstreams)
        answer, _ = upstreams.send(
            request(
                path,
                b"/strip",
                b"Host: a",
                b"X-Shadow-Request: 1",
                b"x-shadow-request: 0",
                b"X-Shadow-Anything: forged",
            )
        )
        assert status(answer) == 200
        legacy, candidate = last_heads(upstreams, seen)
        assert shadow_lines(legacy) == []
        assert shadow_lines(candidate) == [b"X-Shadow-Request: 1"]

    @pytest.mark.parametrize("given", [b"1", b"wire-token-7f3b", b"", TOKEN.encode() + b"x"])
    def test_probe_without_the_token_is_not_answered(
        self, upstreams: Upstreams, path: str, given: bytes
    ) -> None:
        """A probe without the admin token learns nothing about who answered."""
        probe = b"X-Shadow-Probe: " + given
        answer, _ = upstreams.send(request(path, b"/probe", b"Host: a", probe))
        assert status(answer) == 200
        assert b"x-shadow-answered-by" not in answer.lower()

    def test_probe_with_the_token(self, upstreams: Upstreams, path: str) -> None:
        """The token in X-Shadow-Probe gets X-Shadow-Answered-By; no upstream sees the token."""
        seen = counts(upstreams)
        probe = b"X-Shadow-Probe: " + TOKEN.encode()
        answer, _ = upstreams.send(request(path, b"/probe", b"Host: a", probe))
        assert b"X-Shadow-Answered-By: legacy" in header_lines(answer)
        for head in last_heads(upstreams, seen):
            assert TOKEN.encode() not in head

    def test_probe_answer_stays_with_its_request(self, upstreams: Upstreams, path: str) -> None:
        """Legacy's head is the same each time, so its relayed headers are reused: the
        probe's answer goes on the probing request alone, once each time."""
        probe = b"X-Shadow-Probe: " + TOKEN.encode()
        for probing in (True, False, True, True, False):
            fields = (b"Host: a", probe) if probing else (b"Host: a",)
            answer, _ = upstreams.send(request(path, b"/probe-again", *fields))
            answered_by = [line for line in header_lines(answer) if b"Answered-By" in line]
            assert answered_by == ([b"X-Shadow-Answered-By: legacy"] if probing else [])


@pytest.mark.parametrize("path", PATHS)
class TestHost:
    """HTTP/1.1 needs a Host with a value (RFC 9112 section 3.2)."""

    @pytest.mark.parametrize(
        "fields", [(), (b"Host: ",), (b"Host:",)], ids=["missing", "empty", "bare"]
    )
    def test_refused_with_400(
        self, upstreams: Upstreams, path: str, fields: tuple[bytes, ...]
    ) -> None:
        """400 with the proxy's JSON error, the connection closed, no upstream request."""
        seen = counts(upstreams)
        answer, closed = upstreams.send(request(path, b"/nohost", *fields))
        assert status(answer) == 400
        assert closed
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert body == {"error": "missing Host", "upstream": "proxy"}
        # A good request afterwards reaches legacy first: the refused one never did.
        good, _ = upstreams.send(request("lean", b"/after", b"Host: a"))
        assert status(good) == 200
        assert upstreams.legacy.wait_lines(seen[0] + 1)[seen[0]] == b"GET /after HTTP/1.1"

    def test_http10_without_host_is_forwarded(self, upstreams: Upstreams, path: str) -> None:
        """HTTP/1.0 has no Host requirement; such a request is answered by legacy."""
        if path == "handed-over":
            pytest.skip("chunked framing needs HTTP/1.1")
        seen = counts(upstreams)
        answer, _ = upstreams.send(request(path, b"/ten", version=b"1.0"))
        assert status(answer) == 200
        assert upstreams.legacy.wait_lines(seen[0] + 1)[seen[0]] == b"GET /ten HTTP/1.1"


@pytest.mark.parametrize("path", PATHS)
class TestTargets:
    """The request target upstream is the client's, minus a fragment."""

    def test_fragment_is_dropped(self, upstreams: Upstreams, path: str) -> None:
        """``/frag?q=1#top`` reaches both upstreams as ``/frag?q=1``."""
        seen = counts(upstreams)
        answer, _ = upstreams.send(request(path, b"/frag?q=1#top", b"Host: a"))
        assert status(answer) == 200
        for head in last_heads(upstreams, seen):
            assert head.split(b"\r\n", 1)[0] == b"GET /frag?q=1 HTTP/1.1"


class TestTransferCodings:
    """A request transfer coding other than chunked alone is refused, never forwarded."""

    @pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate,chunked", b"x-custom, chunked"])
    def test_refused_with_501(self, upstreams: Upstreams, coding: bytes) -> None:
        """501 with the proxy's JSON error, the connection closed, no upstream request."""
        seen = counts(upstreams)
        raw = (
            b"POST /coded HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
            + coding
            + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        answer, closed = upstreams.send(raw)
        assert status(answer) == 501
        assert closed
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert body == {"error": "unsupported transfer coding", "upstream": "proxy"}
        good, _ = upstreams.send(request("lean", b"/after-coding", b"Host: a"))
        assert status(good) == 200
        assert upstreams.legacy.wait_lines(seen[0] + 1)[seen[0]] == b"GET /after-coding HTTP/1.1"
