"""Raw-socket tools for the hostile-input tests: a recording backend thread and a proxy process.

Hostile requests are bytes no HTTP client library will send, so these tests
speak HTTP/1.1 over plain blocking sockets. The backends run on threads and
the proxy in a subprocess, so the parser under test can be aiohttp's C one or
its pure-Python one (``AIOHTTP_NO_EXTENSIONS=1`` must be set before aiohttp is
imported, hence the separate process).
"""

from __future__ import annotations

import os
import re
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.support import REPO, WAIT_S, listening, proxy_command, without_shedding

__all__ = [
    "ProxyProcess",
    "Recorder",
    "Upstreams",
    "exchange",
    "header_lines",
    "proxied",
    "proxy_process",
    "recording_backend",
    "status",
]

_ANSWER = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'
)
_CLOSE_WAIT_S = 3.0
"""How long a proxy may keep a connection open after answering a bad request."""


@dataclass
class Recorder:
    """What one backend received: raw request lines and heads, and how many connections.

    ``answers`` maps a request target to the raw answer sent for it (``_ANSWER`` otherwise).
    """

    url: str = ""
    connections: int = 0
    lines: list[bytes] = field(default_factory=list)
    heads: list[bytes] = field(default_factory=list)
    """Each request's head as received, request line and blank line included."""
    answers: Mapping[bytes, bytes] = field(default_factory=dict)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def wait_lines(self, count: int) -> list[bytes]:
        """Wait (bounded) until ``count`` request lines arrived; returns them all."""
        with self.lock:
            if not self.lock.wait_for(lambda: len(self.lines) >= count, WAIT_S):
                raise AssertionError(f"expected {count} requests, got {self.lines}")
            return list(self.lines)


def _handler(recorder: Recorder) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            with recorder.lock:
                recorder.connections += 1
            while line := self.rfile.readline():
                head = [line]
                length = 0
                while (header := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                    head.append(header)
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                head.append(header)
                self.rfile.read(length)
                request_line = line.rstrip(b"\r\n")
                with recorder.lock:
                    recorder.lines.append(request_line)
                    recorder.heads.append(b"".join(head))
                    recorder.lock.notify_all()
                target = request_line.split(b" ")[1] if request_line.count(b" ") == 2 else b""
                self.wfile.write(recorder.answers.get(target, _ANSWER))

    return Handler


@contextmanager
def recording_backend(answers: Mapping[bytes, bytes] | None = None) -> Iterator[Recorder]:
    """A keep-alive HTTP/1.1 backend on a thread that records each request line and head.

    ``answers`` gives the raw answer for some request targets.
    """
    recorder = Recorder(answers=answers or {})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(recorder))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class ProxyProcess:
    """A ``shadowproxy run`` subprocess and its bound addresses."""

    process: subprocess.Popen[bytes]
    port: int
    admin: str
    log: list[bytes]
    """Every line the process logged so far (JSON), filled by a reader thread."""

    def metrics(self) -> str:
        """The admin /metrics page."""
        with socket.create_connection(("127.0.0.1", int(self.admin.rsplit(":", 1)[1]))) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            return _read_all(sock).decode()


@contextmanager
def proxy_process(
    legacy: str, candidate: str, log_dir: Path, *, pure_python: bool, config: Path | None = None
) -> Iterator[ProxyProcess]:
    """Run the proxy as a process, with aiohttp's C parser or (``pure_python``) without it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("AIOHTTP_NO_EXTENSIONS", None)
    if pure_python:
        env["AIOHTTP_NO_EXTENSIONS"] = "1"
    args = ["--log-dir", str(log_dir), "--legacy", legacy, "--candidate", candidate]
    if config is not None:
        args += ["--config", str(config)]
    process = subprocess.Popen(
        proxy_command(*without_shedding(*args)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=env,
    )
    assert process.stdout is not None
    reader: threading.Thread | None = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (line := process.stdout.readline()):
            if (event := listening(line)) is not None:
                port = int(event["proxy"].rsplit(":", 1)[1])
                log: list[bytes] = []
                # Keep draining the log so the process never blocks on a full pipe.
                reader = threading.Thread(target=_collect, args=(process.stdout, log), daemon=True)
                reader.start()
                yield ProxyProcess(process, port, event["admin"], log)
                return
        raise AssertionError("proxy did not start")
    finally:
        process.terminate()
        process.wait(30)
        if reader is not None:
            reader.join(WAIT_S)
        process.stdout.close()


def _collect(stream: IO[bytes], lines: list[bytes]) -> None:
    for line in stream:
        lines.append(line)


def _read_all(sock: socket.socket, chunks: list[bytes] | None = None) -> bytes:
    sock.settimeout(_CLOSE_WAIT_S)
    chunks = [] if chunks is None else chunks
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(port: int, request: bytes) -> tuple[bytes, bool]:
    """Send raw ``request``; the bytes answered and whether the proxy then closed the connection.

    Reads until the proxy closes; a connection still open a few seconds after the
    last byte counts as not closed.
    """
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        try:
            return _read_all(sock, chunks), True
        except TimeoutError:
            return b"".join(chunks), False
        except ConnectionResetError:
            return b"".join(chunks), True


@dataclass(frozen=True, slots=True)
class Upstreams:
    """The two recording backends and the proxy process in front of them."""

    legacy: Recorder
    candidate: Recorder
    proxy: ProxyProcess
    log_dir: Path

    def send(self, request: bytes) -> tuple[bytes, bool]:
        """``exchange`` with the proxy."""
        return exchange(self.proxy.port, request)


@contextmanager
def proxied(
    work: Path,
    *,
    legacy: Mapping[bytes, bytes] | None = None,
    candidate: Mapping[bytes, bytes] | None = None,
    config: str = "",
    pure_python: bool = False,
) -> Iterator[Upstreams]:
    """A proxy process in front of two recording backends answering ``legacy`` and ``candidate``.

    ``config`` is YAML added to a configuration that puts loop-lag shedding
    out of reach; evidence goes to ``work``/logs.
    """
    log_dir = work / "logs"
    path = work / "config.yaml"
    path.write_text("shadow: {max_loop_lag_ms: 60000}\n" + config)
    with recording_backend(legacy) as old, recording_backend(candidate) as new:
        with proxy_process(
            old.url, new.url, log_dir, pure_python=pure_python, config=path
        ) as proxy:
            yield Upstreams(old, new, proxy, log_dir)


def status(answer: bytes) -> int:
    """The status code of a raw answer."""
    match = re.match(rb"HTTP/\d\.\d (\d{3}) ", answer)
    assert match, answer[:80]
    return int(match.group(1))


def header_lines(raw: bytes) -> list[bytes]:
    """The header lines of a raw request or answer head, as sent."""
    head = raw.partition(b"\r\n\r\n")[0]
    return head.split(b"\r\n")[1:]
