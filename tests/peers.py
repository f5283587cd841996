"""Misbehaving HTTP peers run as separate processes, so their CPU cost never lands on the
event loop under test: ``python -m tests.peers flood [--chunked]``.

The process prints its port on the first line of stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

FLOOD_BYTES = 20 * 1024 * 1024
_CHUNK = b"x" * 65536


async def _flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunked: bool) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.readuntil(b"\r\n\r\n"):
            framing = (
                b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % FLOOD_BYTES
            )
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + framing + b"\r\n\r\n"
            )
            for _ in range(FLOOD_BYTES // len(_CHUNK)):
                writer.write(b"10000\r\n" + _CHUNK + b"\r\n" if chunked else _CHUNK)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
            await writer.drain()
    writer.close()


async def _main(mode: str, chunked: bool) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await _flood(reader, writer, chunked)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


@contextlib.asynccontextmanager
async def peer(mode: str, *args: str) -> AsyncIterator[str]:
    """Run a peer process; yields its base URL and kills it afterwards."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.peers", mode, *args, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        port = int(await asyncio.wait_for(process.stdout.readline(), 30))
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["flood"])
    parser.add_argument("--chunked", action="store_true")
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(options.mode, options.chunked))
