"""Slow and idle clients cannot lock a well-behaved one out of the proxy.

A proxy process with the attacker on 127.0.0.2 and the well-behaved client
on 127.0.0.1: slowloris connections (a header byte every 200 ms) are cut off
by the head timeout, on the lean path and on connections handed to aiohttp's
server, and so are stalled bodies; 10,000 idle connections from one address
hold at most that address's share of ``max_client_connections``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.hardening.wire import ProxyProcess, proxied
from tests.support import WAIT_S, eventually

ATTACKER = "127.0.0.2"
GET = b"GET /well-behaved HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
CHUNKED = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
QUICK = "clients: {header_timeout_s: 1, body_timeout_s: 1, keepalive_timeout_s: 5}\n"
SLOW_HEAD = b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 1000


def metric(proxy: ProxyProcess, name: str, label: str) -> float:
    """A labelled counter's value on the admin /metrics page (0 when absent)."""
    found = re.search(rf"^{name}{{{label}}} (\S+)$", proxy.metrics(), re.MULTILINE)
    return float(found[1]) if found else 0.0


async def connect(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(WAIT_S):
        return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def well_behaved(port: int) -> bytes:
    """One GET on a fresh connection from 127.0.0.1; the answer, or b"" when refused."""
    with contextlib.suppress(ConnectionError):
        reader, writer = await connect(port)
        try:
            writer.write(GET)
            async with asyncio.timeout(WAIT_S):
                return await reader.read()
        finally:
            writer.close()
    return b""


async def closed_by_proxy(reader: asyncio.StreamReader) -> bool:
    """True once the proxy ends the connection (EOF or reset), bounded by WAIT_S."""
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(WAIT_S):
            while await reader.read(65536):
                pass
    return True


@contextlib.asynccontextmanager
async def slowloris(port: int, count: int) -> AsyncIterator[list[asyncio.StreamWriter]]:
    """``count`` connections from the attacker, each sending a header byte every 200 ms.

    Yields the connections once all are open.
    """
    opened = [await connect(port, ATTACKER) for _ in range(count)]
    writers = [writer for _, writer in opened]
    tasks = [asyncio.get_running_loop().create_task(_trickle(w, SLOW_HEAD)) for w in writers]
    try:
        yield writers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:
            writer.transport.abort()


class TestSlowloris:
    """Connections that trickle their heads are closed; a well-behaved client is answered."""

    async def test_slots_free_up_for_a_well_behaved_client(self, tmp_path: Path) -> None:
        """50 slowloris connections fill max_client_connections: the head timeout frees them."""
        config = "max_client_connections: 50\nclients: {address_share_percent: 100, "
        config += "header_timeout_s: 1, body_timeout_s: 1, keepalive_timeout_s: 5}\n"
        with proxied(tmp_path, config=config) as upstreams:
            proxy = upstreams.proxy
            async with slowloris(proxy.port, 50):
                # Every slot is taken: the proxy refuses the next connection on arrival.
                limit = 'reason="max_client_connections"'
                refused = "shadowproxy_client_connections_refused_total"
                assert await well_behaved(proxy.port) == b""
                assert metric(proxy, refused, limit) >= 1
                answered = b""
                async with asyncio.timeout(WAIT_S):
                    while not answered:
                        answered = await well_behaved(proxy.port)
                assert answered.startswith(b"HTTP/1.1 200 ")
                # Cut off while still trickling, not closed by the attacker.
                head = 'phase="head"'
                assert metric(proxy, "shadowproxy_client_timeouts_total", head) >= 1


class TestHandedOver:
    """aiohttp's side of a handed-over connection keeps the same client timeouts."""

    async def test_slow_head_after_a_handed_over_request(self, tmp_path: Path) -> None:
        """A chunked upload (handed over), answered; then a head trickling in is cut off."""
        with proxied(tmp_path, config=QUICK) as upstreams:
            proxy = upstreams.proxy
            reader, writer = await connect(proxy.port)
            writer.write(CHUNKED + b"5\r\nhello\r\n0\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
            assert head.startswith(b"HTTP/1.1 200 ")
            await reader.readexactly(int(re.findall(rb"Content-Length: (\d+)", head)[0]))
            trickling = asyncio.get_running_loop().create_task(_trickle(writer, SLOW_HEAD))
            assert await closed_by_proxy(reader)
            trickling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trickling
            writer.close()
            await eventually(
                lambda: metric(proxy, "shadowproxy_client_timeouts_total", 'phase="head"') == 1
            )

    async def test_stalled_chunked_body_is_cut_off(self, tmp_path: Path) -> None:
        """A chunked upload that stops mid-body is closed; nothing logs a traceback."""
        with proxied(tmp_path, config=QUICK) as upstreams:
            proxy = upstreams.proxy
            logged = len(proxy.log)
            reader, writer = await connect(proxy.port)
            writer.write(CHUNKED + b"5\r\nhel")
            assert await closed_by_proxy(reader)
            writer.close()
            await eventually(
                lambda: metric(proxy, "shadowproxy_client_timeouts_total", 'phase="body"') == 1
            )
            assert b"Traceback" not in b"".join(proxy.log[logged:])


class TestIdleFlood:
    """10,000 idle connections from one address hold at most its share of the bound."""

    async def test_ten_thousand_idle_connections(self, tmp_path: Path) -> None:
        """The default share (50 % of 10,000) leaves room: the well-behaved client is answered."""
        flood = 10_000
        _raise_open_files(flood + 2_000)
        # A head timeout far away: the share alone must leave the room.
        with proxied(tmp_path, config="clients: {header_timeout_s: 600}\n") as upstreams:
            proxy = upstreams.proxy
            held: list[asyncio.StreamWriter] = []
            try:
                for start in range(0, flood, 500):
                    opened = await asyncio.gather(
                        *(connect(proxy.port, ATTACKER) for _ in range(start, start + 500)),
                        return_exceptions=True,
                    )
                    held.extend(
                        w for r in opened if not isinstance(r, BaseException) for _, w in [r]
                    )
                await eventually(
                    lambda: (
                        metric(
                            proxy,
                            "shadowproxy_client_connections_refused_total",
                            'reason="address_share"',
                        )
                        >= flood // 2 - 100
                    )
                )
                answered = await well_behaved(proxy.port)
            finally:
                for writer in held:
                    writer.transport.abort()
        assert answered.startswith(b"HTTP/1.1 200 ")


async def _trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)  # the slow client under test


def _raise_open_files(needed: int) -> None:
    """Raise this process's descriptor limit (the proxy inherits it), or skip the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
