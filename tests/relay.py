"""A toxiproxy-like TCP fault relay for the tests: put it in front of a backend and break it.

``Relay(upstream)`` listens on 127.0.0.1 and forwards bytes both ways to
``upstream`` (``host:port``) until a ``Toxic`` says otherwise. The toxic can
be swapped at any time (``await relay.set(toxic)``), so one relay can flap
between healthy, slow and down: the relaying faults (``latency``, ``drip``,
``truncate``) apply to open keep-alive connections from their next chunk on,
the others to connections accepted after the change. Faults:

- ``latency``: every chunk from upstream is held back ``latency_s``;
- ``drip``: upstream's answer trickles out ``drip_bytes`` per ``drip_interval_s``;
- ``truncate``: only the first ``keep_bytes`` of upstream's answer are relayed,
  then the connection closes (a Content-Length larger than what arrives);
- ``hang``: the request is read and never answered;
- ``reset``: the request head is read, then the connection is reset (RST);
- ``refuse``: nothing listens (connection refused) until the toxic changes;
- ``huge``: a ``huge_bytes`` answer (Content-Length or chunked) is sent, no upstream;
- ``garbage``: ``payload`` (or random bytes) is sent instead of HTTP, then close;
- ``answer``: the canned bytes ``payload`` are sent as the answer, then close.

Where the relay's own CPU must not land on the event loop under test (a 20 MB
body in a timing-sensitive test), run it as a process:
``python -m tests.relay --fault huge --bytes 20971520 [--chunked]`` prints the
port on the first stdout line and serves until killed, at the lowest CPU
priority; ``relay_process(...)`` wraps that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from tests.support import held_port

__all__ = ["HEALTHY", "Fault", "MiB", "Relay", "Toxic", "relay", "relay_process"]

MiB = 1024 * 1024
_CHUNK = 64 * 1024
_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024


class Fault(StrEnum):
    """What the relay does to a connection."""

    NONE = "none"
    LATENCY = "latency"
    DRIP = "drip"
    TRUNCATE = "truncate"
    HANG = "hang"
    RESET = "reset"
    REFUSE = "refuse"
    HUGE = "huge"
    GARBAGE = "garbage"
    ANSWER = "answer"


@dataclass(frozen=True, slots=True)
class Toxic:
    """One fault and its knobs; the defaults describe a healthy relay."""

    fault: Fault = Fault.NONE
    latency_s: float = 0.0
    drip_bytes: int = 1
    drip_interval_s: float = 0.05
    keep_bytes: int = 0
    huge_bytes: int = 20 * MiB
    chunked: bool = False
    payload: bytes = b""


HEALTHY = Toxic()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the peer gets an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    """One request head, or b"" when the peer closed first."""
    try:
        return await reader.readuntil(_HEAD_END)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return b""


async def _send_huge(writer: asyncio.StreamWriter, size: int, chunked: bool) -> None:
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + framing + _HEAD_END)
    block = b"x" * _CHUNK
    sent = 0
    while sent < size:
        piece = block[: min(_CHUNK, size - sent)]
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        sent += len(piece)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
    await writer.drain()


class Relay:
    """A loopback TCP relay applying a swappable ``Toxic``; use ``relay(...)`` to run one."""

    def __init__(self, upstream: str | None = None, toxic: Toxic = HEALTHY) -> None:
        self._upstream = upstream
        self.toxic = toxic
        self.port = 0
        self.accepted = 0
        """Connections accepted so far."""
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._held: socket.socket | None = None

    @property
    def url(self) -> str:
        """The relay's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        """Client connections currently open through the relay."""
        return len(self._open)

    async def start(self) -> None:
        """Listen (unless the toxic refuses) on the relay's port, ephemeral at first.

        The port is held by a socket that never listens from the first start
        to ``close``, so while the relay refuses nobody else can take it.
        """
        if self._held is None:
            self._held = held_port(shared=True)
            self.port = self._held.getsockname()[1]
        if self.toxic.fault is not Fault.REFUSE:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_port=True
            )

    async def set(self, toxic: Toxic) -> None:
        """Apply ``toxic`` from now on (``refuse`` stops listening, the others listen again)."""
        refusing = toxic.fault is Fault.REFUSE
        self.toxic = toxic
        if refusing and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif not refusing and self._server is None:
            await self.start()

    async def close(self) -> None:
        """Stop listening and abort every open connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._held is not None:
            self._held.close()
            self._held = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._open.add(writer)
        try:
            with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
                await self._apply(self.toxic, reader, writer)
        finally:
            self._open.discard(writer)
            writer.close()

    async def _apply(
        self, toxic: Toxic, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        fault = toxic.fault
        if fault in {Fault.NONE, Fault.LATENCY, Fault.DRIP, Fault.TRUNCATE}:
            await self._forward(reader, writer)
            return
        if fault is Fault.HANG:
            while await reader.read(_CHUNK):
                pass
            return
        while await _read_head(reader):
            if fault is Fault.RESET:
                _reset(writer)
                return
            if fault is Fault.HUGE:
                await _send_huge(writer, toxic.huge_bytes, toxic.chunked)
                continue
            if fault is Fault.GARBAGE:
                writer.write(toxic.payload or os.urandom(4096))
            else:
                writer.write(toxic.payload)
            await writer.drain()
            return

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._upstream is None:
            raise ValueError("this toxic relays to an upstream, and none was given")
        host, _, port = self._upstream.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        try:
            async with asyncio.TaskGroup() as group:
                up = group.create_task(_pipe(reader, up_writer, lambda: HEALTHY))
                down = group.create_task(_pipe(up_reader, writer, lambda: self.toxic))
                # Whichever direction ends first ends the connection.
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
                for task in (up, down):
                    task.cancel()
        finally:
            up_writer.transport.abort()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, current: Callable[[], Toxic]
) -> None:
    """Copy bytes from ``reader`` to ``writer`` until EOF or the toxic's end.

    The toxic is read again for every chunk, so a change applies to open
    (keep-alive) connections too, as in toxiproxy.
    """
    sent = 0
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(_CHUNK):
            toxic = current()
            if toxic.fault is Fault.LATENCY:
                await asyncio.sleep(toxic.latency_s)  # the injected fault, not a synchronisation
            if toxic.fault is Fault.TRUNCATE:
                data = data[: max(toxic.keep_bytes - sent, 0)]
            if toxic.fault is Fault.DRIP:
                for start in range(0, len(data), toxic.drip_bytes):
                    writer.write(data[start : start + toxic.drip_bytes])
                    await writer.drain()
                    await asyncio.sleep(toxic.drip_interval_s)  # the injected fault
            else:
                writer.write(data)
                await writer.drain()
            sent += len(data)
            if toxic.fault is Fault.TRUNCATE and sent >= toxic.keep_bytes:
                return


@contextlib.asynccontextmanager
async def relay(upstream: str | None = None, toxic: Toxic = HEALTHY) -> AsyncIterator[Relay]:
    """Run a relay in this event loop; ``upstream`` is a base URL or ``host:port``."""
    target = upstream.removeprefix("http://").rstrip("/") if upstream else None
    running = Relay(target, toxic)
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@contextlib.asynccontextmanager
async def relay_process(toxic: Toxic, upstream: str | None = None) -> AsyncIterator[str]:
    """Run a relay as a separate process (its CPU off this loop); yields its base URL."""
    args = ["--fault", str(toxic.fault), "--bytes", str(toxic.huge_bytes)]
    if toxic.chunked:
        args.append("--chunked")
    if upstream:
        args += ["--upstream", upstream]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.relay", *args, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        port = int(await asyncio.wait_for(process.stdout.readline(), 30))
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        await process.wait()


async def _serve(toxic: Toxic, upstream: str | None) -> None:
    async with relay(upstream, toxic) as running:
        print(running.port, flush=True)
        await asyncio.Event().wait()


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.relay")
    parser.add_argument("--fault", choices=[str(f) for f in Fault], default="none")
    parser.add_argument("--upstream", help="base URL or host:port to relay to")
    parser.add_argument("--bytes", type=int, default=20 * MiB, help="size of a huge answer")
    parser.add_argument("--chunked", action="store_true", help="send a huge answer chunked")
    options = parser.parse_args()
    toxic = replace(
        HEALTHY, fault=Fault(options.fault), huge_bytes=options.bytes, chunked=options.chunked
    )
    # It stands for a backend on another machine: on a busy two-core CI machine
    # its CPU goes last, so it does not land in the timings of the proxy under test.
    os.nice(19)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(toxic, options.upstream))


if __name__ == "__main__":
    _main()
