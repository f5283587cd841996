"""The shadow path: what is mirrored, what is skipped, and that it never costs the client."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tests.relay import Fault, Toxic, relay_process
from tests.support import (
    ADMIN_AUTH,
    Backend,
    backend,
    eventually,
    json_ok,
    make_settings,
    running_proxy,
)

ROUNDS = 7
"""Rounds of requests through both proxies; the median round's ratio is checked, so a
burst of load elsewhere on the machine during one round does not decide."""
REQUESTS = 12
"""Requests through each proxy in one round."""
RATIO = 2.0
"""How much slower the proxy with the bad candidate may answer than the healthy one."""


async def _round_ratios(healthy: str, degraded: str) -> list[float]:
    """Per round: the median latency through ``degraded`` over that through ``healthy``.

    Within a round the requests alternate between the proxies, one by one
    (and which goes first alternates from round to round): background load
    on the machine hits both series alike, so their ratio measures the
    proxies, not the moment.
    """
    ratios = []
    async with aiohttp.ClientSession() as session:
        await _latencies(session, (healthy, degraded), 5)  # warm keep-alive connections
        for round_ in range(ROUNDS):
            order = (healthy, degraded) if round_ % 2 == 0 else (degraded, healthy)
            latencies = await _latencies(session, order, REQUESTS)
            median = {url: statistics.median(times) for url, times in latencies.items()}
            ratios.append(round(median[degraded] / median[healthy], 2))
    return ratios


async def _latencies(
    session: aiohttp.ClientSession, order: tuple[str, str], requests: int
) -> dict[str, list[float]]:
    """Sequential GETs, ``requests`` through each proxy in ``order``, alternating; in seconds."""
    latencies: dict[str, list[float]] = {url: [] for url in order}
    for n in range(requests):
        for url in order:
            started = time.perf_counter()
            async with session.get(f"{url}/item/{n}") as response:
                assert response.status == 200
                assert (await response.json())["ok"] is True
            latencies[url].append(time.perf_counter() - started)
    return latencies


@asynccontextmanager
async def _hanging_candidate() -> AsyncIterator[Backend]:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="never")

    async with backend(hang) as candidate:
        try:
            yield candidate
        finally:
            release.set()


@asynccontextmanager
async def _resetting_candidate() -> AsyncIterator[Backend]:
    async def reset(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()
        return web.Response(text="unreachable")

    async with backend(reset) as candidate:
        yield candidate


@asynccontextmanager
async def _flooding_candidate() -> AsyncIterator[Backend]:
    async with relay_process(Toxic(fault=Fault.HUGE)) as url:
        yield Backend(url=url)


@asynccontextmanager
async def _chunked_flooding_candidate() -> AsyncIterator[Backend]:
    async with relay_process(Toxic(fault=Fault.HUGE, chunked=True)) as url:
        yield Backend(url=url)


class TestIsolation:
    """A hanging, resetting or flooding candidate leaves the client's answer and speed unchanged."""

    async def _assert_isolated(
        self, tmp_path: Path, bad: Callable[[], AbstractAsyncContextManager[Backend]]
    ) -> None:
        shadow = {"shadow": {"grace_s": 0.1, "timeout_s": 30}}
        async with backend(json_ok) as legacy, backend(json_ok) as healthy, bad() as candidate:
            healthy_settings = make_settings(legacy.url, healthy.url, tmp_path / "ok", shadow)
            bad_settings = make_settings(legacy.url, candidate.url, tmp_path / "bad", shadow)
            async with (
                running_proxy(healthy_settings) as good,
                running_proxy(bad_settings) as worse,
            ):
                ratios = await _round_ratios(good.url, worse.url)
        # A bad candidate may not slow the client beyond noise. The bound is a
        # ratio between two proxies measured side by side, never an absolute time.
        assert statistics.median(ratios) <= RATIO, f"bad / healthy median by round: {ratios}"

    async def test_hanging_candidate(self, tmp_path: Path) -> None:
        """A candidate that never answers costs the client nothing."""
        await self._assert_isolated(tmp_path, _hanging_candidate)

    async def test_resetting_candidate(self, tmp_path: Path) -> None:
        """A candidate that resets every connection costs the client nothing."""
        await self._assert_isolated(tmp_path, _resetting_candidate)

    async def test_flooding_candidate(self, tmp_path: Path) -> None:
        """A candidate announcing 20 MB answers costs the client nothing."""
        await self._assert_isolated(tmp_path, _flooding_candidate)

    async def test_chunked_flooding_candidate(self, tmp_path: Path) -> None:
        """A candidate streaming 20 MB chunked answers costs the client nothing."""
        await self._assert_isolated(tmp_path, _chunked_flooding_candidate)


class TestMirroring:
    """Which requests reach the candidate, and how."""

    async def test_get_is_mirrored_with_marker_and_without_expect(self, tmp_path: Path) -> None:
        """The candidate gets the same request plus X-Shadow-Request, without Expect."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                async with aiohttp.ClientSession() as session:
                    async with session.get(proxy.url + "/a/b?c=d", headers={"X-Trace": "t1"}) as r:
                        assert r.status == 200
                await candidate.wait_for(lambda seen: len(seen) == 1)
        copy = candidate.seen[0]
        headers = {k.lower(): v for k, v in copy.headers}
        assert (copy.method, copy.path) == ("GET", "/a/b?c=d")
        assert headers["x-shadow-request"] == "1"
        assert headers["x-trace"] == "t1"
        assert "expect" not in headers
        assert "x-shadow-request" not in {k.lower() for k, _ in legacy.seen[0].headers}

    async def test_post_is_not_mirrored_by_default(self, tmp_path: Path) -> None:
        """A POST reaches legacy only, and the skip is counted with reason ``method``."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                async with aiohttp.ClientSession() as session:
                    async with session.post(proxy.url + "/orders", data=b"{}") as r:
                        assert r.status == 200
                    async with session.get(proxy.url + "/after") as r:
                        assert r.status == 200
                await candidate.wait_for(lambda seen: any(s.path == "/after" for s in seen))
                skipped = proxy.metric("shadowproxy_shadow_skipped_total", reason="method")
        assert [s.method for s in legacy.seen] == ["POST", "GET"]
        assert [s.method for s in candidate.seen] == ["GET"]
        assert skipped == 1

    async def test_route_opt_in_mirrors_writes(self, tmp_path: Path) -> None:
        """A route with mirror_writes sends the POST body to the candidate too."""
        routes = {"routes": [{"match": "/orders", "domain": "orders", "mirror_writes": True}]}
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, routes)
            async with running_proxy(settings) as proxy:
                async with aiohttp.ClientSession() as session:
                    async with session.post(proxy.url + "/orders", data=b'{"n": 1}') as r:
                        assert r.status == 200
                await candidate.wait_for(lambda seen: len(seen) == 1)
        assert (candidate.seen[0].method, candidate.seen[0].body) == ("POST", b'{"n": 1}')

    async def test_oversized_body_streams_to_legacy_and_skips_shadow(self, tmp_path: Path) -> None:
        """A body over mirror_max_body reaches legacy whole and is never mirrored."""
        routes = {
            "routes": [{"match": "/upload", "domain": "files", "mirror_writes": True}],
            "shadow": {"mirror_max_body": 1024, "grace_s": 0.5},
        }
        big = bytes(range(256)) * 64
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, routes)
            async with running_proxy(settings) as proxy:
                async with aiohttp.ClientSession() as session:
                    async with session.post(proxy.url + "/upload", data=big) as r:
                        assert r.status == 200
                skipped = proxy.metric("shadowproxy_shadow_skipped_total", reason="body_too_large")
        assert legacy.seen[0].body == big
        assert candidate.seen == []
        assert skipped == 1

    async def test_full_pool_drops_instead_of_waiting(self, tmp_path: Path) -> None:
        """With the shadow pool full, requests are still answered and drops are counted."""
        release = asyncio.Event()

        async def hang(request: web.Request) -> web.Response:
            await release.wait()
            return web.Response(text="late")

        async with backend(json_ok) as legacy, backend(hang) as candidate:
            settings = make_settings(
                legacy.url, candidate.url, tmp_path, {"shadow": {"max_inflight": 2, "grace_s": 0.1}}
            )
            async with running_proxy(settings) as proxy:
                statuses = [
                    status
                    for status, *_ in [await _status(proxy.url + f"/p/{n}") for n in range(6)]
                ]
                dropped = proxy.metric("shadowproxy_shadow_skipped_total", reason="queue_full")
                release.set()
        assert statuses == [200] * 6
        assert dropped == 4

    async def test_pause_stops_mirroring(self, tmp_path: Path) -> None:
        """POST /shadow/pause stops mirroring at once; /shadow/resume restarts it."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                async with aiohttp.ClientSession(headers=ADMIN_AUTH) as session:
                    async with session.post(proxy.admin + "/shadow/pause") as r:
                        assert (await r.json())["shadow"] == "paused"
                    async with session.get(proxy.url + "/while-paused") as r:
                        assert r.status == 200
                    async with session.get(proxy.admin + "/status") as r:
                        assert (await r.json())["shadow"] == "paused"
                    async with session.post(proxy.admin + "/shadow/resume") as r:
                        assert (await r.json())["shadow"] == "on"
                    async with session.get(proxy.url + "/after-resume") as r:
                        assert r.status == 200
                await candidate.wait_for(lambda seen: len(seen) >= 1)
                paused = proxy.metric("shadowproxy_shadow_skipped_total", reason="paused")
        assert [s.path for s in candidate.seen] == ["/after-resume"]
        assert paused == 1


async def _status(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


def _exchange_records(log_dir: Path) -> list[dict[str, Any]]:
    records = (
        orjson.loads(line)
        for path in sorted(log_dir.glob("shadow-*.jsonl*"))
        for line in path.read_bytes().splitlines()
    )
    return [record for record in records if record["type"] == "exchange"]


class TestLargeComparisons:
    """Differing answers over the inline bound are compared in the comparison process."""

    async def test_large_difference_reaches_the_evidence(self, tmp_path: Path) -> None:
        """A 100 KB pair that differs in one field gets its verdict and its path."""

        def answer(price: float) -> Callable[[web.Request], Any]:
            items = [{"id": i, "name": f"item {i}", "price": 1.5 + i} for i in range(2000)]

            async def handler(request: web.Request) -> web.Response:
                items[1234]["price"] = price
                return web.json_response({"items": items})

            return handler

        async with backend(answer(7.0)) as legacy, backend(answer(8.0)) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path)
            async with running_proxy(settings) as proxy, aiohttp.ClientSession() as session:
                async with session.get(proxy.url + "/catalog") as response:
                    body = await response.read()
                assert len(body) > settings.shadow.inline_compare_max_bytes

                def diverged() -> bool:
                    labels = {"route": "/catalog", "domain": "default", "verdict": "diverged"}
                    return proxy.metric("shadowproxy_comparisons_total", **labels) == 1

                await eventually(diverged)
        exchanges = _exchange_records(tmp_path)
        assert [d["path"] for d in exchanges[0]["differences"]] == ["$.items[1234].price"]
