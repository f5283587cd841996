"""Python's floor: the least a mirroring proxy does, as a benchmark contender (issue 22).

Usage: ``python bench/raw_forwarder.py LISTEN_PORT LEGACY_PORT CANDIDATE_PORT [PROCESSES]``

asyncio on uvloop, one process per core (SO_REUSEPORT). Each client
connection gets one kept-alive connection to legacy and one to the candidate.
A request is the bytes up to the blank line ending its head (GET only: no
body, no other HTTP semantics); they go to both upstreams as they are.
Legacy's answer, read to the end its Content-Length gives, goes back to the
client; the candidate's body is compared with legacy's as bytes, and the
next request waits for both, as nginx's ``mirror`` does. Not shadowproxy:
no routing, evidence, bounds or fault handling. What it costs is the floor a
Python process on this machine cannot go below.
"""

import asyncio
import os
import signal
import socket
import sys

import uvloop

_END = b"\r\n\r\n"
_LENGTH = b"\r\nContent-Length: "  # nginx's spelling: the floor parses nothing else


class Upstream(asyncio.Protocol):
    """One kept-alive upstream connection: one Content-Length-framed answer at a time."""

    def __init__(self, client: "Client") -> None:
        self.client, self.buffer, self.size = client, bytearray(), -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if self.size < 0:
            end = buffer.find(_END)
            if end < 0:
                return
            start = buffer.find(_LENGTH, 0, end) + len(_LENGTH)
            self.head = end + 4
            self.size = self.head + int(buffer[start : buffer.find(b"\r", start)])
        if len(buffer) >= self.size:
            answer = bytes(buffer[: self.size])
            del buffer[: self.size]
            self.size = -1
            self.client.answered(self, answer, self.head)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.transport.abort()


class Client(asyncio.Protocol):
    """One client connection and its two upstream connections."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport, self.buffer, self.busy = transport, bytearray(), True
        self.opening = asyncio.get_running_loop().create_task(self.open())

    async def open(self) -> None:
        loop, upstream = asyncio.get_running_loop(), lambda: Upstream(self)
        _, self.legacy = await loop.create_connection(upstream, "127.0.0.1", LEGACY)
        _, self.candidate = await loop.create_connection(upstream, "127.0.0.1", CANDIDATE)
        self.busy = False
        self.next()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self.next()

    def next(self) -> None:
        end = self.buffer.find(_END)
        if end < 0:
            return
        request = bytes(self.buffer[: end + 4])
        del self.buffer[: end + 4]
        self.busy, self.answers = True, {}
        self.legacy.transport.write(request)
        self.candidate.transport.write(request)

    def answered(self, upstream: Upstream, answer: bytes, head: int) -> None:
        if upstream is self.legacy:
            self.transport.write(answer)
        self.answers[upstream] = answer[head:]
        if len(self.answers) == 2:
            COUNTS[self.answers[self.legacy] == self.answers[self.candidate]] += 1
            self.busy = False
            self.next()

    def connection_lost(self, exc: Exception | None) -> None:
        for upstream in (getattr(self, "legacy", None), getattr(self, "candidate", None)):
            if upstream is not None:
                upstream.transport.close()


async def serve(port: int) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    server = await asyncio.get_running_loop().create_server(Client, sock=sock, backlog=4096)
    await server.serve_forever()


def stop(children: list[int]) -> None:
    for child in children:
        os.kill(child, signal.SIGTERM)
    sys.exit(0)


if __name__ == "__main__":
    LISTEN, LEGACY, CANDIDATE = (int(arg) for arg in sys.argv[1:4])
    COUNTS = [0, 0]  # differing, identical bodies
    children: list[int] = []
    for _ in range(int(sys.argv[4]) - 1 if len(sys.argv) > 4 else 0):
        if (pid := os.fork()) == 0:
            children = []
            break
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: stop(children))
    uvloop.run(serve(LISTEN))
