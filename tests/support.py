"""Test helpers: recording backends, the proxy in-process or as a child process, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import sys
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from shadowproxy.cli import main
from shadowproxy.config import Overrides, settings_from_document
from shadowproxy.runtime.serve import Bound, serve
from shadowproxy.settings import Settings

if TYPE_CHECKING:
    import pytest

REPO = Path(__file__).resolve().parents[1]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WAIT_S = 10.0
"""Upper bound on any wait in the tests; reaching it means the behaviour is broken."""
ADMIN_TOKEN = "test-admin-token"
"""The admin token of every test proxy (``make_settings``, ``proxy_process``) unless set."""
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
"""The header state-changing admin calls carry."""


@dataclass
class Seen:
    """One request a backend received."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Backend:
    """A running loopback backend that records what it receives."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, predicate: Callable[[list[Seen]], bool]) -> None:
        """Wait until ``predicate(seen)`` holds (bounded, no sleeps)."""
        async with asyncio.timeout(WAIT_S), self.arrived:
            await self.arrived.wait_for(lambda: predicate(self.seen))


@contextlib.asynccontextmanager
async def backend(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Backend]:
    """Serve ``handler`` for every path on 127.0.0.1; record each request first.

    With ``tls`` (a server context) it serves https.
    """
    state = Backend(url="")

    async def recording(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with state.arrived:
            state.seen.append(
                Seen(request.method, request.raw_path, list(request.headers.items()), body)
            )
            state.arrived.notify_all()
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recording)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
    host, port = runner.addresses[0][:2]
    state.url = f"{'http' if tls is None else 'https'}://{host}:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def json_ok(request: web.Request) -> web.Response:
    """A handler answering ``{"ok": true}``."""
    return web.json_response({"ok": True, "path": request.path})


def make_settings(
    legacy: str | None,
    candidate: str | None,
    log_dir: Path,
    document: Mapping[str, Any] | None = None,
    secondary: str | None = None,
) -> Settings:
    """Settings for a test proxy on ephemeral loopback ports.

    Load shedding on loop lag is set out of reach unless a test sets it: on a
    busy CI machine a lagging loop would otherwise skip the very mirror a test
    waits for. The admin token is ``ADMIN_TOKEN`` unless ``document`` sets
    one. ``document``'s ``shadow`` keys merge into these defaults. Without
    ``legacy`` and ``candidate`` there is no HTTP data plane (``document``
    configures another).
    """
    given = dict(document or {})
    shadow = {"grace_s": 0.5, "max_loop_lag_ms": 60_000, **given.pop("shadow", {})}
    doc: dict[str, Any] = {"drain_s": 2, "admin_token": ADMIN_TOKEN, **given, "shadow": shadow}
    return settings_from_document(
        doc,
        "<test>",
        Overrides(
            listen="127.0.0.1:0",
            admin="127.0.0.1:0",
            legacy=legacy,
            candidate=candidate,
            secondary=secondary,
            log_dir=str(log_dir),
        ),
    )


@dataclass
class RunningProxy:
    """A proxy served in this test's event loop."""

    bound: Bound
    registry: CollectorRegistry
    stop: asyncio.Event
    done: asyncio.Future[list[int]]

    @property
    def url(self) -> str:
        return f"http://{self.bound.proxy}"

    @property
    def admin(self) -> str:
        return f"http://{self.bound.admin}"

    def metric(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    async def close(self) -> int:
        self.stop.set()
        return (await self.done)[0]


@contextlib.asynccontextmanager
async def running_proxy(
    settings: Settings, reload: Callable[[], Settings] | None = None
) -> AsyncIterator[RunningProxy]:
    """Run ``serve`` in-process until the block ends, then stop it gracefully.

    With ``reload``, SIGHUP sent to this process reloads the proxy's configuration.
    """
    registry = CollectorRegistry()
    stop = asyncio.Event()
    ready: asyncio.Future[Bound] = asyncio.get_running_loop().create_future()
    done = asyncio.gather(
        serve(
            settings,
            on_ready=ready.set_result,
            stop=stop,
            registry=registry,
            reload=reload,
            install_signals=reload is not None,
        )
    )
    ready_or_failed = await asyncio.wait(
        {ready, done}, timeout=10, return_when=asyncio.FIRST_COMPLETED
    )
    if done in ready_or_failed[0]:
        await done
    proxy = RunningProxy(bound=ready.result(), registry=registry, stop=stop, done=done)
    try:
        yield proxy
    finally:
        if not done.done():
            await proxy.close()


def records(tmp_path: Path, route: str | None = None) -> list[dict[str, Any]]:
    """The exchange records under ``tmp_path/logs`` (of ``route``), read after the proxy stopped."""
    files = sorted((tmp_path / "logs").glob("shadow-*.jsonl*"))
    lines = b"".join(path.read_bytes() for path in files).splitlines()
    found = [json.loads(line) for line in lines if line.strip()]
    return [r for r in found if r["type"] == "exchange" and (route is None or r["route"] == route)]


def config_error(document: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``check-config`` of ``document``, which must exit 2 with one line naming the file.

    Returns the rest of that line (the key and the problem).
    """
    path = tmp_path / "bad.yaml"
    path.write_text(document)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"{path}: ")
    return err.removeprefix(f"{path}: ")


def held_port(*, shared: bool = False) -> socket.socket:
    """A loopback TCP socket bound to a fresh port that never listens; close it when done.

    While it is open a connect to its port is refused and nobody can take the
    port, so it stands for "nothing listens here" (a port bound and released
    may be handed to the next ephemeral listener, even the proxy under test).
    ``shared`` sets SO_REUSEPORT first, so this process may listen on the port
    too with ``reuse_port`` (the fault relay switches between listening and
    refusing without ever letting the port go).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = WAIT_S) -> None:
    """Poll ``check`` until it holds, bounded: for state that offers no event to await.

    ``check`` may be a coroutine function (another process's metrics, read over HTTP).
    ``within`` is the bound, for what a loaded machine does slowly (a browser starting).
    """
    async with asyncio.timeout(within):
        while not await _holds(check()):  # noqa: ASYNC110 - metrics and files offer no event
            await asyncio.sleep(0.01)


async def _holds(result: bool | Awaitable[bool]) -> bool:
    return await result if isinstance(result, Awaitable) else result


def proxy_command(*args: str) -> list[str]:
    """``shadowproxy run`` on ephemeral loopback ports, logging JSON, plus ``args``."""
    return [
        sys.executable,
        "-m",
        "shadowproxy",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--log-format",
        "json",
        *args,
    ]


def listening(line: bytes) -> dict[str, Any] | None:
    """The "shadowproxy listening" event (with the bound addresses) if ``line`` is it."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if isinstance(event, dict) and event.get("event") == "shadowproxy listening":
        return event
    return None


@dataclass(frozen=True)
class ProxyProcess:
    """A ``shadowproxy run`` child process and its bound addresses."""

    process: asyncio.subprocess.Process
    url: str
    admin: str
    grpc: str | None = None
    """The gRPC listener's ``HOST:PORT``, when it has one."""

    async def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM (a graceful stop), then its exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout_s)


def without_shedding(*args: str) -> tuple[str, ...]:
    """``args`` with a ``--config`` that puts loop-lag shedding out of reach, unless they have one.

    A busy CI machine then never skips the mirrors a test counts. The same
    file sets the admin token to ``ADMIN_TOKEN``.
    """
    if "--config" in args:
        return args
    config = Path(tempfile.mkdtemp(prefix="shadowproxy-test-")) / "config.yaml"
    config.write_text(f"admin_token: {ADMIN_TOKEN}\nshadow: {{max_loop_lag_ms: 60000}}\n")
    return ("--config", str(config), *args)


START_BOUND_S = 60.0
"""How long a proxy process may take to announce itself. Twice the supervisor's own bound
on its workers (30 s, counted from later on): a loaded machine once took 30 s from the
process's start to two spawned workers listening, and the announcement came just after."""


@contextlib.asynccontextmanager
async def proxy_process(*args: str, shed_on_lag: bool = False) -> AsyncIterator[ProxyProcess]:
    """Run ``shadowproxy run`` on ephemeral loopback ports until the block ends.

    Its log is read as it comes, so a full pipe never blocks the proxy; the
    last lines are kept for the message when it fails to start. Unless
    ``shed_on_lag`` (or a ``--config`` of the caller's), loop-lag shedding is
    put out of reach, so a busy CI machine never skips the mirrors a test
    counts. A process still running at the end is stopped with SIGTERM.
    """
    if not shed_on_lag:
        args = without_shedding(*args)
    process = await asyncio.create_subprocess_exec(
        *proxy_command(*args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    tail: deque[bytes] = deque(maxlen=40)
    event: dict[str, Any] | None = None
    drain: asyncio.Future[tuple[None]] | None = None
    try:
        with contextlib.suppress(TimeoutError):
            event = await asyncio.wait_for(_listening(process.stdout, tail), START_BOUND_S)
        if event is None:
            output = b"".join(tail).decode(errors="replace")
            raise AssertionError(f"the proxy did not start: {output}")
        drain = asyncio.gather(_discard(process.stdout))
        url = f"{event.get('scheme', 'http')}://{event['proxy']}"
        yield ProxyProcess(process, url, f"http://{event['admin']}", event.get("grpc"))
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
        if drain is not None:
            await drain


async def _listening(stream: asyncio.StreamReader, tail: deque[bytes]) -> dict[str, Any] | None:
    """The proxy's "shadowproxy listening" event, or None when its log ends first."""
    while line := await stream.readline():
        tail.append(line)
        if (event := listening(line)) is not None:
            return event
    return None


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
