"""SSE test helpers: scripted event-stream backends, a streaming client and the evidence."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.cutover.cutover_support import records
from tests.support import Backend, backend

EVENT_STREAM = {"Accept": "text/event-stream"}


def event(n: int, kind: str = "tick", **extra: object) -> bytes:
    """One SSE event with id ``n`` and JSON data ``{"n": n, ...}``."""
    return f"event: {kind}\nid: {n}\ndata: {json.dumps({'n': n, **extra})}\n\n".encode()


@dataclass
class Script:
    """What a scripted SSE backend sends: ``(delay_s, bytes)`` steps, then it ends or holds."""

    steps: Sequence[tuple[float, bytes]]
    hold: bool = False
    """Keep the stream open after the last step, until the client goes."""
    every_s: float | None = None
    """While holding, send a numbered event this often (an endless stream)."""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the client (the proxy's copy, or a client) closed the stream."""


def sse_handler(script: Script) -> Any:
    """An aiohttp handler that plays ``script`` as ``text/event-stream``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for delay, data in script.steps:
                if delay:
                    await asyncio.sleep(delay)  # the backend's pace, not a test's wait
                await response.write(data)
            n = len(script.steps)
            while script.hold:
                if script.every_s is None:
                    await asyncio.sleep(3600)
                await asyncio.sleep(script.every_s or 0)
                n += 1
                await response.write(event(n))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            script.closed.set()
            raise
        return response

    return handler


@contextlib.asynccontextmanager
async def sse_backend(script: Script) -> AsyncIterator[Backend]:
    """A loopback backend playing ``script``; closed streams set ``script.closed``."""
    async with backend(sse_handler(script)) as running:
        yield running


async def read_stream(url: str, *headers: str) -> bytes:
    """The whole body ``curl -sN`` receives (no buffering), as bytes."""
    args = ["curl", "-sN", "--max-time", "10"]
    for header in headers:
        args += ["-H", header]
    process = await asyncio.create_subprocess_exec(
        *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    return out


def exchanges(log_dir: Path) -> list[dict[str, Any]]:
    """The exchange records written so far."""
    return records(log_dir, "exchange")


def kinds(record: dict[str, Any]) -> list[str]:
    """The kinds of a record's differences, in order."""
    return [d["kind"] for d in record["differences"]]
