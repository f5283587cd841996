"""Small framed answers go out in one write; the client cannot tell them from streamed ones."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from shadowproxy.http.relay import ONE_WRITE_MAX_BYTES
from tests.support import backend, json_ok, make_settings, running_proxy

SMALL = 1000
LARGE = ONE_WRITE_MAX_BYTES + 1
# Deliberately unsorted, repeated and without Content-Type.
_HEAD = (
    "HTTP/1.1 200 OK\r\nX-B: 2\r\nSet-Cookie: a=1\r\nX-A: 1\r\nSet-Cookie: b=2\r\n"
    "Content-Length: {length}\r\n\r\n"
)


def _body(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


@contextlib.asynccontextmanager
async def raw_legacy(*, cut: bool = False) -> AsyncIterator[str]:
    """A legacy writing exact bytes: ``/N`` answers N body bytes (half of them when ``cut``)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                size = int(head.split(b" ", 2)[1].lstrip(b"/"))
                body = _body(size)
                writer.write(_HEAD.format(length=size).encode())
                writer.write(body[: size // 2] if cut else body)
                await writer.drain()
                if cut:
                    break
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def _get(url: str) -> tuple[list[tuple[str, str]], bytes]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(url) as response:
            body = await response.read()
            return [(k.decode(), v.decode()) for k, v in response.raw_headers], body


class TestOneWrite:
    """Answers up to ONE_WRITE_MAX_BYTES are buffered; larger ones stream; both look the same."""

    async def test_small_and_large_heads_are_identical(self, tmp_path: Path) -> None:
        """Both paths relay exactly legacy's headers in order, repeated ones kept, plus Via."""
        async with raw_legacy() as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy, candidate.url, tmp_path)) as proxy:
                small_headers, small_body = await _get(f"{proxy.url}/{SMALL}")
                edge_headers, edge_body = await _get(f"{proxy.url}/{ONE_WRITE_MAX_BYTES}")
                large_headers, large_body = await _get(f"{proxy.url}/{LARGE}")
        assert (small_body, edge_body, large_body) == (
            _body(SMALL),
            _body(ONE_WRITE_MAX_BYTES),
            _body(LARGE),
        )

        def shape(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
            # Content-Length is checked below.
            return [(k, "" if k == "Content-Length" else v) for k, v in headers]

        assert shape(small_headers) == shape(edge_headers) == shape(large_headers)
        # Exactly legacy's headers, in legacy's order, plus Via: no Date, Server or
        # Content-Type of the proxy's own.
        assert shape(small_headers) == [
            ("X-B", "2"),
            ("Set-Cookie", "a=1"),
            ("X-A", "1"),
            ("Set-Cookie", "b=2"),
            ("Content-Length", ""),
            ("Via", "1.1 shadowproxy"),
        ]
        assert dict(small_headers)["Content-Length"] == str(SMALL)
        assert dict(large_headers)["Content-Length"] == str(LARGE)

    @pytest.mark.parametrize("size", [SMALL, LARGE], ids=["buffered", "streamed"])
    async def test_cut_body_aborts_the_client(self, tmp_path: Path, size: int) -> None:
        """Legacy closing mid-body gives the client a cut body, never a complete-looking one."""
        async with raw_legacy(cut=True) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy, candidate.url, tmp_path)) as proxy:
                with pytest.raises(aiohttp.ClientPayloadError):
                    await _get(f"{proxy.url}/{size}")
                errors = proxy.metric(
                    "shadowproxy_upstream_errors_total", upstream="legacy", reason="incomplete"
                )
        assert errors == 1
