"""``shadowproxy demo``: the whole pipeline on embedded defaults, on loopback.

It starts the bundled legacy, a second legacy instance (the secondary that
reveals noise) and the candidate, runs shadowproxy in front of them, sends
traffic through it, stops it gracefully and prints the report of what the
evidence shows, then what ran.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from shadowproxy.config import Overrides, settings_from_document
from shadowproxy.demo.backends import DEMO_PATHS, build_backend
from shadowproxy.report.command import add_report_arguments, run_report
from shadowproxy.runtime.serve import Bound, serve
from shadowproxy.settings import Settings
from shadowproxy.sinks.logs import configure_logging

__all__ = ["DEMO_CONFIG", "demo_settings", "run_demo", "running_app", "running_backend"]

_READY_S = 60.0
"""Bound on the proxy's start: generous, as a loaded machine takes seconds for what
an idle one does in milliseconds (a whole demo ran 11 s with six busy processes on two cores)."""

DEMO_CONFIG: dict[str, object] = {
    "routes": [
        {"match": "/api/users/{id}", "domain": "accounts"},
        {"match": "/api/orders/{id}", "domain": "orders", "mirror_writes": False},
        {"match": "/api/orders", "domain": "orders"},
        {"match": "/api/search", "domain": "search"},
        {"match": "/api/catalog", "domain": "catalog"},
        {"match": "/api/health", "domain": "platform"},
    ],
    "compare": {"noise": {"min_samples": 5}},
    "shadow": {"grace_s": 5},
}
"""The demo's embedded configuration (upstreams and ports are filled in at start)."""

_CONCURRENCY = 2


@asynccontextmanager
async def running_backend(which: str) -> AsyncIterator[str]:
    """Serve a demo backend on an ephemeral loopback port; yields its base URL."""
    async with running_app(build_backend(which)) as url:
        yield url


@asynccontextmanager
async def running_app(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on an ephemeral loopback port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def demo_settings(legacy: str, candidate: str, secondary: str | None, log_dir: str) -> Settings:
    """The demo configuration pointed at running backends.

    Its admin listener gets a random token nobody is told: the demo changes
    nothing through the admin API, and nobody else can.
    """
    return settings_from_document(
        {**DEMO_CONFIG, "admin_token": secrets.token_hex(16)},
        "<demo>",
        Overrides(
            listen="127.0.0.1:0",
            admin="127.0.0.1:0",
            legacy=legacy,
            candidate=candidate,
            secondary=secondary,
            log_dir=log_dir,
        ),
    )


async def _traffic(base: str, requests: int) -> dict[int, int]:
    """Send the GET paths in turn, and every tenth request a POST (never mirrored)."""
    statuses: dict[int, int] = {}
    paths = itertools.cycle(DEMO_PATHS)
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(("POST", "/api/orders") if n % 10 == 9 else ("GET", next(paths)))

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            method, path = queue.get_nowait()
            body = {"sku": "LAMP-1"} if method == "POST" else None
            async with session.request(method, base + path, json=body) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(_CONCURRENCY)))
    return statuses


async def _run(requests: int, log_dir: str) -> list[str]:
    """Run the backends, the proxy and the traffic; returns what ran, one line each."""
    async with AsyncExitStack() as stack:
        legacy = await stack.enter_async_context(running_backend("legacy"))
        secondary = await stack.enter_async_context(running_backend("legacy"))
        candidate = await stack.enter_async_context(running_backend("candidate"))
        settings = demo_settings(legacy, candidate, secondary, log_dir)
        ready: asyncio.Future[Bound] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        server = asyncio.gather(
            serve(settings, on_ready=ready.set_result, stop=stop, install_signals=False)
        )
        bound = await asyncio.wait_for(asyncio.shield(ready), _READY_S)
        statuses = await _traffic(f"http://{bound.proxy}", requests)
        stop.set()
        await server
    return [
        f"demo: legacy {legacy} (a second instance, for noise: {secondary})",
        f"demo: candidate {candidate}",
        f"demo: shadowproxy http://{bound.proxy} (admin http://{bound.admin})",
        f"demo: {requests} requests sent through the proxy; the client saw {statuses}",
    ]


def run_demo(requests: int = 200, log_dir: str | None = None) -> int:
    """Run the demo, print the report, then what ran; returns 0 when the pipeline worked.

    The report comes first, so the first lines on the screen are the verdict
    and the routes that block cutover. The proxy logs only warnings here: its
    start and stop lines would repeat what the demo prints after the report.
    """
    configure_logging(json=False, level="warning")
    with tempfile.TemporaryDirectory(prefix="shadowproxy-demo-") as scratch:
        directory = log_dir or str(Path(scratch) / "logs")
        ran = asyncio.run(_run(requests, directory))
        parser = argparse.ArgumentParser(prog="shadow report")
        add_report_arguments(parser)
        run_report(parser.parse_args([directory, "--format", "table"]))
        print()
        print("\n".join(ran))
        if log_dir:
            print(f"demo: evidence in {directory}")
            print("demo: the same report as a page:")
            print("      shadow report DIR --format html --out report.html")
        else:
            print("demo: to keep the evidence and see the report as a page, run")
            print("      shadowproxy demo --log-dir DIR")
            print("      shadow report DIR --format html --out report.html")
    return 0
