"""Anyone can send paths: the route table, /metrics and a scrape stay small and quick.

Clients choose paths, so learned route names are few (``max_routes``, 100 by
default) and short (``MAX_LEARNED_ROUTE``); configured routes are outside
that bound. ``/metrics`` is rendered off the event loop, so a scrape of a
large registry never stalls the connections the loop serves.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import aiohttp
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from shadowproxy.settings import MAX_LEARNED_ROUTE
from tests.support import backend, json_ok, make_settings, running_proxy

ATTACK = 520
"""Requests with long random paths, as in the review that found the flood."""
SERIES = 20_000
"""Series of a counter planted in the registry: several hundred milliseconds of rendering."""
_NOT_HEX = "ghijklmnopqrstuvwxyz"


def _long_path(rng: random.Random) -> str:
    """About 1 KB of letters in 15 segments of 60: no segment looks like an id."""
    return "/" + "/".join("".join(rng.choices(_NOT_HEX, k=60)) for _ in range(15))


class TestRouteFlood:
    """Long random paths leave a small /metrics and configured routes untouched."""

    async def test_long_random_paths(self, tmp_path: Path) -> None:
        """520 long random paths: every label short, /metrics small, the configured route kept."""
        rng = random.Random(18)
        document = {"routes": [{"match": "/orders/{id}", "domain": "orders"}]}
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, document)
            async with running_proxy(settings) as proxy, aiohttp.ClientSession() as session:
                for _ in range(ATTACK):
                    async with session.get(proxy.url + _long_path(rng)) as response:
                        assert response.status == 200
                async with session.get(proxy.url + "/orders/7") as response:
                    assert response.status == 200
                async with session.get(proxy.admin + "/metrics") as response:
                    metrics = await response.text()
        routes = {
            sample.labels["route"]
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if family.name == "shadowproxy_requests" and "route" in sample.labels
        }
        assert routes == {"other", "/orders/{id}"}
        assert max(len(line) for line in metrics.splitlines()) < 2 * MAX_LEARNED_ROUTE + 200
        assert len(metrics) < 512 * 1024, len(metrics)


class TestScrape:
    """A scrape renders off the event loop."""

    async def test_scrape_does_not_stall_the_loop(self, tmp_path: Path) -> None:
        """The loop's longest stall during a large scrape is a small part of the scrape's time."""
        async with backend(json_ok) as legacy:
            settings = make_settings(legacy.url, legacy.url, tmp_path)
            async with running_proxy(settings) as proxy:
                planted = Counter(
                    "planted", "A large registry.", ("route",), registry=proxy.registry
                )
                for n in range(SERIES):
                    planted.labels(f"/planted/{n:06d}").inc()
                stalls: list[float] = []
                scraped = asyncio.Event()

                async def tick() -> None:
                    last = time.perf_counter()
                    while not scraped.is_set():
                        await asyncio.sleep(0.001)  # the probe's own cadence, not a wait for state
                        now = time.perf_counter()
                        stalls.append(now - last)
                        last = now

                async def scrape() -> tuple[float, int]:
                    started = time.perf_counter()
                    async with (
                        aiohttp.ClientSession() as session,
                        session.get(proxy.admin + "/metrics") as response,
                    ):
                        size = len(await response.read())
                    scraped.set()
                    return time.perf_counter() - started, size

                _, (elapsed, size) = await asyncio.gather(tick(), scrape())
        assert size > SERIES * 20, "the planted series were rendered"
        # On the loop, the rendering was one stall as long as the scrape itself.
        assert max(stalls) < elapsed / 4, (max(stalls), elapsed)
        print(f"scrape {elapsed * 1e3:.0f} ms, longest loop stall {max(stalls) * 1e3:.1f} ms")
