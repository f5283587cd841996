"""The benchmark's floor (``bench/raw_forwarder.py``) relays legacy, copies to the candidate."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.support import REPO, WAIT_S, Backend, backend, eventually, held_port


def _port(upstream: Backend) -> str:
    return str(urlsplit(upstream.url).port)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
async def forwarder() -> AsyncIterator[tuple[int, Backend, Backend]]:
    async def legacy_answer(request: web.Request) -> web.Response:
        return web.Response(body=b'{"from": "legacy", "path": "%s"}' % request.path.encode())

    async def candidate_answer(request: web.Request) -> web.Response:
        return web.Response(body=b'{"from": "candidate"}')

    async with backend(legacy_answer) as legacy, backend(candidate_answer) as candidate:
        held = held_port(shared=True)
        port = held.getsockname()[1]
        argv = [sys.executable, str(REPO / "bench" / "raw_forwarder.py"), str(port)]
        process = await asyncio.create_subprocess_exec(*argv, _port(legacy), _port(candidate), "2")
        try:
            await eventually(lambda: _answers(port))
            yield port, legacy, candidate
        finally:
            process.terminate()
            async with asyncio.timeout(WAIT_S):
                await process.wait()
            held.close()


async def test_relays_legacy_and_mirrors_every_request(
    forwarder: tuple[int, Backend, Backend],
) -> None:
    """Requests on one kept-alive connection get legacy's bodies; the candidate sees each."""
    port, legacy, candidate = forwarder
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in ("/a", "/b", "/c"):
            writer.write(f"GET {path} HTTP/1.1\r\nHost: floor\r\n\r\n".encode())
            async with asyncio.timeout(WAIT_S):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200")
            assert body == b'{"from": "legacy", "path": "%s"}' % path.encode()
    finally:
        writer.close()
    await candidate.wait_for(lambda seen: [s.path for s in seen] == ["/a", "/b", "/c"])
    assert [s.path for s in legacy.seen] == ["/a", "/b", "/c"]
