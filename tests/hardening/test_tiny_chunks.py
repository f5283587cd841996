"""Answers in one-byte chunks cost the proxy per byte, never a stalled event loop.

An unrelated client's latency is measured while another client downloads
answers from legacy, and while the candidate answers mirrored requests: first
with the body in ordinary 16 KiB chunks (the healthy case), then with the same
body in one-byte chunks, against one proxy process in one test. The
one-byte chunks may cost more (six times the bytes on the wire, a parser
callback each) but only by a ratio, never by the seconds a loop stalled by a
quarter of a million callbacks took.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

from tests.hardening.wire import Upstreams, proxied
from tests.support import eventually

BODY = 256 * 1024
"""Body bytes of every download: in one-byte chunks, 1.5 MiB of chunked framing."""
ROUNDS = 5
"""Rounds of healthy-then-tiny (order alternating); the median round's ratio is checked,
so a burst of load from elsewhere on the machine in one phase does not decide."""
SAMPLES = 100
MIRRORS_PER_S = 10
DOWNLOADS_PER_S = 10
"""Paced like the mirrors: back to back, the one-byte phase measures the CPU its framing
takes, and on a busy machine that alone reads 15-46x."""
RATIO = 8.0
"""How much more one-byte chunks may slow the unrelated client than ordinary ones.
With a stalled loop it was over a hundred times."""
PING = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'
)


def _chunked(size: int) -> bytes:
    """An answer of ``BODY`` bytes in chunks of ``size``."""
    chunk = b"%x\r\n%b\r\n" % (size, b"x" * size)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * (BODY // size) + b"0\r\n\r\n"


ORDINARY = _chunked(16 * 1024)
ONE_BYTE = _chunked(1)


async def _latencies(port: int, samples: int) -> list[float]:
    """Sequential keep-alive GET /ping round trips, in seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"
    times = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().partition(b"content-length: ")[2].partition(b"\r\n")[0])
            await reader.readexactly(length)
            times.append(time.perf_counter() - started)
    finally:
        writer.close()
    return times


async def _fetch_to_end(port: int, target: bytes) -> None:
    """One GET on a fresh connection, its answer read (not parsed) until the proxy closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        while await reader.read(256 * 1024):
            pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def _attack(port: int, target: bytes, per_s: float | None) -> AsyncIterator[None]:
    """Fetch ``target`` over and over (``per_s`` times a second, or back to back) meanwhile."""

    async def loop() -> None:
        while True:
            started = time.perf_counter()
            await _fetch_to_end(port, target)
            if per_s is not None:
                # The attack's own pacing, not a synchronisation.
                await asyncio.sleep(max(0.0, 1 / per_s - (time.perf_counter() - started)))

    task = asyncio.get_running_loop().create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98]


class TestTinyChunks:
    """One-byte chunks from either side leave an unrelated client's p99 near the healthy case."""

    async def test_unrelated_client_p99(self, tmp_path: Path) -> None:
        """Legacy's and the candidate's one-byte chunks: p99 within RATIO of ordinary chunks."""
        legacy = {b"/ordinary": ORDINARY, b"/one-byte": ONE_BYTE, b"/ping": PING}
        candidate = {b"/ordinary": ORDINARY, b"/one-byte": ONE_BYTE, b"/ping": PING}
        legacy |= {b"/mirror-ordinary": PING, b"/mirror-one-byte": PING}
        candidate |= {b"/mirror-ordinary": ORDINARY, b"/mirror-one-byte": ONE_BYTE}
        with proxied(tmp_path, legacy=legacy, candidate=candidate) as upstreams:
            await _latencies(upstreams.proxy.port, 20)  # warm-up: pools, imports, first mirrors
            from_legacy = await _ratios(upstreams, b"/ordinary", b"/one-byte", DOWNLOADS_PER_S)
            from_candidate = await _ratios(
                upstreams, b"/mirror-ordinary", b"/mirror-one-byte", MIRRORS_PER_S
            )
        figures = (
            f"one-byte / ordinary p99 by round: legacy {from_legacy}, candidate {from_candidate}"
        )
        assert statistics.median(from_legacy) <= RATIO, figures
        assert statistics.median(from_candidate) <= RATIO, figures


async def _ratios(
    upstreams: Upstreams, healthy: bytes, tiny: bytes, per_s: float | None
) -> list[float]:
    """p99 under ``tiny`` over p99 under ``healthy``, per round, measured back to back."""
    ratios = []
    for round_ in range(ROUNDS):
        p99: dict[bytes, float] = {}
        for target in (healthy, tiny) if round_ % 2 == 0 else (tiny, healthy):
            line = b"GET " + target + b" HTTP/1.1"
            seen = _count(upstreams, line)
            async with _attack(upstreams.proxy.port, target, per_s):
                # Under way, not starting: the attack reached its backends twice more.
                await eventually(lambda line=line, seen=seen: _count(upstreams, line) >= seen + 2)
                p99[target] = _p99(await _latencies(upstreams.proxy.port, SAMPLES))
        ratios.append(round(p99[tiny] / p99[healthy], 2))
    return ratios


def _count(upstreams: Upstreams, line: bytes) -> int:
    """Requests with this request line the backends have seen so far."""
    return sum(1 for seen in upstreams.candidate.lines + upstreams.legacy.lines if seen == line)
