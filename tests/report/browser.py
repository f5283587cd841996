"""A headless Chromium driven over the DevTools protocol, for tests that look at pages.

``chromium(profile)`` starts the browser with a fresh profile and a free
debugging port, connects to its page over aiohttp's WebSocket client, and
yields a ``Page`` that opens files, evaluates scripts and takes screenshots.
The browser is killed on exit, whatever happened.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest

from tests.support import eventually

__all__ = ["BROWSER_WAIT_S", "CHROMIUM", "Page", "chromium", "needs_chromium"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_WAIT_S = 60.0
"""Bound on one browser operation, starting included: a loaded 2-core machine starts a
browser and renders a long page slowly (a start took 2.7 s with six busy processes)."""
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="chromium is not installed (apt-get install -y chromium); CI installs it",
)


class Page:
    """One browser tab, spoken to over the DevTools protocol."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._sent = 0
        self._events: list[dict[str, Any]] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call ``method`` and return its result; a protocol error fails the test."""
        self._sent += 1
        ident = self._sent
        await self._socket.send_json({"id": ident, "method": method, "params": params})
        async with asyncio.timeout(BROWSER_WAIT_S):
            while True:
                message = await self._socket.receive_json()
                if message.get("id") != ident:
                    self._events.append(message)
                    continue
                assert "error" not in message, f"{method}: {message['error']}"
                result: dict[str, Any] = message["result"]
                return result

    async def _event(self, method: str) -> None:
        async with asyncio.timeout(BROWSER_WAIT_S):
            while not any(e.get("method") == method for e in self._events):
                self._events.append(await self._socket.receive_json())

    async def open(self, page: Path, width: int = 1280, height: int = 900) -> None:
        """Load ``page`` in a ``width`` x ``height`` viewport and wait for its load event."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        await self.send("Page.enable")
        self._events.clear()
        await self.send("Page.navigate", url=page.as_uri())
        await self._event("Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (JSON-serialisable); a thrown error fails."""
        reply = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        return reply["result"].get("value")

    async def screenshot(
        self, target: Path, selector: str | None = None, max_height: float | None = None
    ) -> Path:
        """A PNG of the page or of the first ``selector`` match, at most ``max_height`` tall."""
        box = await self.evaluate(
            "(() => { const e = "
            + (f"document.querySelector({json.dumps(selector)})" if selector else "null")
            + "; const r = e ? e.getBoundingClientRect() : null;"
            " const d = document.documentElement;"
            " return r ? {x: r.left + scrollX, y: r.top + scrollY, width: r.width,"
            " height: r.height} : {x: 0, y: 0, width: d.scrollWidth, height: d.scrollHeight};"
            " })()"
        )
        assert box is not None and box["width"] > 0 and box["height"] > 0, selector
        if max_height is not None:
            box["height"] = min(box["height"], max_height)
        shot = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={**box, "scale": 1},
        )
        await asyncio.to_thread(target.write_bytes, base64.b64decode(shot["data"]))
        return target


def _debugging_port(profile: Path) -> int | None:
    """The port Chromium wrote to ``DevToolsActivePort`` (its first line), once complete."""
    try:
        lines = (profile / "DevToolsActivePort").read_text().splitlines()
    except OSError:
        return None
    return int(lines[0]) if len(lines) >= 2 and lines[0].isdigit() else None


def _open_log(profile: Path) -> BinaryIO:
    """A profile directory, and the file next to it that takes the browser's output.

    A port file left by an earlier browser in the same profile would name a
    port nobody listens on any more: it goes before the browser starts.
    """
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)
    return (profile.parent / f"{profile.name}.log").open("wb")


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium with a fresh profile in ``profile``; yields its first tab."""
    log = await asyncio.to_thread(_open_log, profile)
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *_FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    try:
        await eventually(
            lambda: _debugging_port(profile) is not None or process.returncode is not None,
            within=BROWSER_WAIT_S,
        )
        port = _debugging_port(profile)
        assert port is not None, f"chromium exited {process.returncode}; see {log.name}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
                targets = await reply.json()
            tab = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                yield Page(socket)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        log.close()
