"""What legacy's answer becomes for the client, on the lean path and the handed-over one.

Status line and header bytes arrive exactly as legacy sent them (Latin-1 both
ways), and the two paths give the same bytes. Answers the proxy cannot relay
faithfully (a 101 nobody asked for, a control byte in the reason phrase, a
transfer coding other than chunked) are a 502 from legacy and an ``error``
verdict from the candidate, never a traceback; a 204 or 304 carries no body
framing. Raw sockets on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.harden import strict_lines
from tests.hardening.wire import Upstreams, header_lines, proxied, status
from tests.support import eventually

LATIN = (
    b"HTTP/1.1 200 D\xe9j\xe0 vu\r\nX-Name: Jos\xc3\xa9\r\nX-Latin: caf\xe9 cr\xe8me\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nX-Latin: caf\xe9\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n"
)
ODD = {
    "switching-protocols": (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    ),
    "control-byte-in-reason": b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok",
    "gzip-then-chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    ),
}
BODILESS = {
    "204": b'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nETag: "a"\r\n\r\n',
    "304": b'HTTP/1.1 304 Not Modified\r\nContent-Length: 120\r\nETag: "a"\r\n\r\n',
}
PATHS = ["lean", "handed-over"]


def _target(name: str) -> bytes:
    return b"/" + name.encode()


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    """One proxy in front of backends answering the canned bytes above, per target."""
    work: Path = tmp_path_factory.mktemp("wire-answers")
    legacy = {
        b"/latin": LATIN,
        b"/chunked": CHUNKED,
        **{_target(name): raw for name, raw in ODD.items()},
        **{_target(name): raw for name, raw in BODILESS.items()},
    }
    candidate = {b"/candidate-" + name.encode(): raw for name, raw in ODD.items()}
    with proxied(work, legacy=legacy, candidate=candidate) as running:
        yield running


def get(path: str, target: bytes) -> bytes:
    """A GET that closes after its answer; "handed-over" adds an empty chunked body."""
    head = b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
    if path == "handed-over":
        return head + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    return head + b"\r\n"


class TestHeaderBytes:
    """Legacy's status line and header bytes reach the client unchanged, the same on both paths."""

    @pytest.mark.parametrize("path", PATHS)
    def test_latin1_and_utf8_bytes_unchanged(self, upstreams: Upstreams, path: str) -> None:
        """The reason phrase and header values arrive byte for byte."""
        answer, _ = upstreams.send(get(path, b"/latin"))
        assert answer.startswith(b"HTTP/1.1 200 D\xe9j\xe0 vu\r\n")
        lines = header_lines(answer)
        assert b"X-Name: Jos\xc3\xa9" in lines
        assert b"X-Latin: caf\xe9 cr\xe8me" in lines
        assert answer.endswith(b"\r\n\r\nok")

    @pytest.mark.parametrize("target", [b"/latin", b"/chunked"])
    def test_both_paths_answer_the_same_bytes(self, upstreams: Upstreams, target: bytes) -> None:
        """A whole answer and a streamed chunked one: identical bytes from either server."""
        lean, _ = upstreams.send(get("lean", target))
        handed, _ = upstreams.send(get("handed-over", target))
        assert status(lean) == 200
        assert handed == lean


@pytest.mark.parametrize("path", PATHS)
class TestOddAnswers:
    """An answer the proxy cannot relay faithfully: 502 from legacy, no traceback."""

    @pytest.mark.parametrize("name", ODD)
    def test_legacy_answer_is_a_502(self, upstreams: Upstreams, path: str, name: str) -> None:
        """The client gets the proxy's 502 JSON; the log holds no traceback."""
        logged = len(upstreams.proxy.log)
        answer, closed = upstreams.send(get(path, _target(name)))
        assert status(answer) == 502
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert body == {"error": "other", "upstream": "legacy"}
        assert closed
        # The next request is answered: nothing was left broken behind the 502.
        good, _ = upstreams.send(get(path, b"/after"))
        assert status(good) == 200
        log = b"".join(upstreams.proxy.log[logged:])
        for trace in (b"Traceback", b"Fatal error", b"Unhandled exception"):
            assert trace not in log

    @pytest.mark.parametrize("name", BODILESS)
    def test_bodiless_answer_has_no_framing(
        self, upstreams: Upstreams, path: str, name: str
    ) -> None:
        """A 204 or 304 reaches the client without Content-Length; its other headers stay."""
        answer, _ = upstreams.send(get(path, _target(name)))
        assert status(answer) == int(name)
        lines = [line.lower() for line in header_lines(answer)]
        assert not [line for line in lines if line.startswith(b"content-length")]
        assert b'etag: "a"' in lines
        assert answer.endswith(b"\r\n\r\n")


class TestOddCandidateAnswers:
    """The candidate's odd answers are ``error`` verdicts; the client still gets legacy's."""

    async def test_error_verdicts(self, upstreams: Upstreams) -> None:
        """One exchange record per odd answer: verdict error, candidate error ``other``."""
        for name in ODD:
            answer, _ = upstreams.send(get("lean", b"/candidate-" + name.encode()))
            assert status(answer) == 200
        expected = {f"/candidate-{name}" for name in ODD}
        odd: dict[str, dict[str, Any]] = {}

        def recorded() -> bool:
            records = strict_lines(upstreams.log_dir)
            odd.update((r["path"], r) for r in records if r.get("path") in expected)
            return set(odd) == expected

        await eventually(recorded)
        for record in odd.values():
            assert record["verdict"] == "error"
            assert record["candidate"]["error"] == "other"
