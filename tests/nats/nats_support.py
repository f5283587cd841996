"""A real nats-server on loopback, scripted NATS services, and the proxy in front of them.

``nats_server()`` starts Debian's ``nats-server`` on 127.0.0.1 on a port it
picks itself (``-p -1``), reads the port from its log, and stops it at the
end; the test skips when the binary is missing. ``responder`` serves a
subject as a test's ``Reply`` says and records what it received.
``nats_proxy`` runs the proxy with a ``nats`` section (no HTTP upstreams).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.support import WAIT_S, RunningProxy, make_settings, running_proxy

_LISTENING = re.compile(rb"Listening for client connections on [^\s]*:(\d+)")


@dataclass(frozen=True)
class NatsServer:
    """A running nats-server."""

    url: str


@contextlib.asynccontextmanager
async def nats_server(
    config: str | None = None, tmp: Path | None = None
) -> AsyncIterator[NatsServer]:
    """Run nats-server on 127.0.0.1 (with ``config``, a server configuration, when given)."""
    # Debian installs it in /usr/sbin, which a user's PATH may lack.
    binary = shutil.which("nats-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if binary is None:
        pytest.skip("nats-server not installed (apt-get install nats-server)")
    args = [binary, "-a", "127.0.0.1", "-p", "-1"]
    if config is not None:
        assert tmp is not None
        path = tmp / "nats.conf"
        path.write_text(config)
        args += ["-c", str(path)]
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        port = None
        async with asyncio.timeout(WAIT_S):
            while port is None:
                line = await process.stderr.readline()
                if not line:
                    raise AssertionError("nats-server exited before listening")
                found = _LISTENING.search(line)
                port = None if found is None else int(found.group(1))
        drain = asyncio.gather(_discard(process.stderr))
        yield NatsServer(f"nats://127.0.0.1:{port}")
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    await drain


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


@dataclass
class Reply:
    """How a responder answers: ``answer(request payload)`` gives the payload and headers."""

    answer: Callable[[bytes], tuple[bytes, dict[str, str] | None]] = lambda data: (data, None)
    hold: asyncio.Event | None = None
    """Wait for this event before answering (a stuck service)."""
    copies: int = 1
    """How many replies to send (a flood when more than one)."""


@dataclass
class Responder:
    """A service on a subject and what it received."""

    seen: list[Msg] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, count: int) -> None:
        """Wait until ``count`` requests arrived (bounded, no sleeps)."""
        async with asyncio.timeout(WAIT_S), self.arrived:
            await self.arrived.wait_for(lambda: len(self.seen) >= count)


@contextlib.asynccontextmanager
async def responder(
    url: str, subject: str, reply: Reply | None = None, **options: Any
) -> AsyncIterator[Responder]:
    """Serve ``subject`` on the server at ``url`` until the block ends."""
    script = reply or Reply()
    state = Responder()
    client = await nats.connect(url, **options)

    async def serve(msg: Msg) -> None:
        async with state.arrived:
            state.seen.append(msg)
            state.arrived.notify_all()
        if script.hold is not None:
            await script.hold.wait()
        data, headers = script.answer(msg.data)
        for _ in range(script.copies):
            await client.publish(msg.reply, data, headers=headers)

    await client.subscribe(subject, cb=serve)
    await client.flush()
    try:
        yield state
    finally:
        if script.hold is not None:
            script.hold.set()
        await client.close()


@contextlib.asynccontextmanager
async def nats_proxy(
    tmp_path: Path, section: dict[str, Any], document: dict[str, Any] | None = None
) -> AsyncIterator[RunningProxy]:
    """The proxy with ``nats: section`` and no HTTP upstreams, every match recorded."""
    doc: dict[str, Any] = {
        "evidence": {"sample_matches_percent": 100},
        "compare": {"timing": {"absolute_ms": 600_000, "min_delta_ms": 600_000}},
        **(document or {}),
        "nats": section,
    }
    async with running_proxy(make_settings(None, None, tmp_path / "logs", doc)) as proxy:
        yield proxy


@contextlib.asynccontextmanager
async def client(url: str, **options: Any) -> AsyncIterator[Client]:
    """A NATS client (a requester or a publisher) for the block."""
    connection = await nats.connect(url, **options)
    try:
        yield connection
    finally:
        await connection.close()
