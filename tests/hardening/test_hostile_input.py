"""Hostile HTTP/1.1 input, with aiohttp's C parser and its pure-Python one.

Smuggling-prone and malformed requests are answered 400 (or 431) and the
connection is closed, before either backend sees anything. Odd but valid
paths reach both upstreams byte for byte and are labelled by their
normalised route.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.wire import ProxyProcess, Upstreams, exchange, proxied, status

HOSTILE = {
    "content-length-and-transfer-encoding": (
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "two-content-lengths": (
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello"
    ),
    "two-hosts": b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bare-lf": b"GET /x HTTP/1.1\nHost: a\n\n",
    "obs-fold": b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "chunked-then-identity": (
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
    ),
    "header-over-8k": b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "over-100-headers": (
        b"GET /x HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(100))
        + b"\r\n"
    ),
    "invalid-method": b"G@T /x HTTP/1.1\r\nHost: a\r\n\r\n",
    "invalid-version": b"GET /x HTTP/9.9\r\nHost: a\r\n\r\n",
    "malformed-version": b"GET /x HTTP/1.x\r\nHost: a\r\n\r\n",
}

ODD_PATHS = {
    "/a/b/../c": "/a/c",
    "/a/%2e%2e/c": "/c",
    "/a/%2E%2E/%2e/c": "/c",
    "//a//b": "/a/b",
    "/a%00b": "/a%00b",
}


@pytest.fixture(scope="module", params=["c-parser", "pure-python-parser"])
def upstreams(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Upstreams]:
    """One proxy process per parser, shared by this module's tests."""
    work: Path = tmp_path_factory.mktemp("hostile")
    with proxied(work, pure_python=request.param == "pure-python-parser") as running:
        yield running


class TestHostileRequests:
    """Each malformed request: 400 or 431, connection closed, no backend request."""

    @pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
    def test_refused_and_closed(self, upstreams: Upstreams, raw: bytes) -> None:
        """The proxy answers 400/431 and closes; neither backend sees a request."""
        seen = (len(upstreams.legacy.lines), len(upstreams.candidate.lines))
        answer, closed = exchange(upstreams.proxy.port, raw)
        assert status(answer) in {400, 431}
        assert closed
        # A well-formed request on a fresh connection proves the backends are reachable,
        # so "no request seen" above is not an accident of timing.
        good, _ = exchange(
            upstreams.proxy.port, b"GET /probe HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        assert status(good) == 200
        lines = upstreams.legacy.wait_lines(seen[0] + 1)
        assert lines[seen[0] :] == [b"GET /probe HTTP/1.1"]
        candidate = upstreams.candidate.wait_lines(seen[1] + 1)
        assert candidate[seen[1] :] == [b"GET /probe HTTP/1.1"]


def _logged_after(proxy: ProxyProcess, start: int, expected: bytes) -> bytes:
    """The proxy's log since line ``start``, once ``expected`` is in it (bounded polling:
    the log is read by a thread and offers nothing to wait on)."""
    deadline = time.monotonic() + 10
    while expected not in (logged := b"\n".join(proxy.log[start:])):
        assert time.monotonic() < deadline, f"{expected!r} never logged"
        time.sleep(0.01)
    return logged


class TestRejectionLogs:
    """Malformed requests leave one warning each: no traceback, none of the client's bytes."""

    def test_no_traceback_or_client_bytes(self, upstreams: Upstreams) -> None:
        """A rejected request logs a single warning naming only the kind of error."""
        marker = b"X-Planted-Secret: CANARY-HOSTILE-0d2f"
        seen = len(upstreams.proxy.log)
        mirrored = len(upstreams.candidate.lines)
        answer, _ = exchange(
            upstreams.proxy.port,
            b"GET /x HTTP/1.1\r\nHost: a\r\n" + marker + b"\r\n bad fold\r\n\r\n",
        )
        assert status(answer) == 400
        good, _ = exchange(
            upstreams.proxy.port, b"GET /probe HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        assert status(good) == 200
        # The probe's mirror lands now, not among the requests the next test counts.
        upstreams.candidate.wait_lines(mirrored + 1)
        logged = _logged_after(upstreams.proxy, seen, b"rejected malformed request: ")
        assert b"Traceback" not in logged
        assert b"CANARY-HOSTILE" not in logged
        assert b'"level":"error"' not in logged.replace(b" ", b"")


class TestOddPaths:
    """Dot segments, encoded dots, double slashes and %00 pass through untouched."""

    @pytest.mark.parametrize(("path", "route"), ODD_PATHS.items(), ids=ODD_PATHS.keys())
    def test_forwarded_byte_identical(self, upstreams: Upstreams, path: str, route: str) -> None:
        """Both upstreams get the raw target; the metrics label is the normalised route."""
        seen = (len(upstreams.legacy.lines), len(upstreams.candidate.lines))
        request = f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
        answer, _ = exchange(upstreams.proxy.port, request)
        assert status(answer) == 200
        expected = f"GET {path} HTTP/1.1".encode()
        assert upstreams.legacy.wait_lines(seen[0] + 1)[seen[0]] == expected
        assert upstreams.candidate.wait_lines(seen[1] + 1)[seen[1]] == expected
        metrics = upstreams.proxy.metrics()
        assert f'route="{route}"' in metrics
        assert f'route="{path}"' not in metrics or path == route
