"""--workers N: several processes share the port; one admin listener sums and controls them all."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.proxy.test_lifecycle import _start_proxy
from tests.support import backend, json_ok

REQUESTS = 60


def _sum(metrics: str, sample_name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


class TestWorkers:
    """Two workers behind one port and one admin endpoint."""

    async def test_two_workers(self, tmp_path: Path) -> None:
        """Both workers serve; metrics are summed; pause reaches every worker; SIGTERM exits 0."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            process, url, admin = await _start_proxy(
                "--legacy",
                legacy.url,
                "--candidate",
                candidate.url,
                "--log-dir",
                str(tmp_path),
                "--workers",
                "2",
                "--listen",
                "127.0.0.1:0",
            )
            try:
                async with aiohttp.ClientSession() as session:
                    # The supervisor announces itself only once every worker listens.
                    async with session.get(admin + "/status") as response:
                        status = await response.json()
                    assert (status["workers_ready"], len(status["worker_pids"])) == (2, 2)
                    # A new connection per request lets the kernel spread them over workers.
                    for n in range(REQUESTS):
                        async with aiohttp.ClientSession() as fresh, fresh.get(f"{url}/w/{n}") as r:
                            assert r.status == 200
                    await candidate.wait_for(lambda seen: len(seen) == REQUESTS)
                    async with session.get(admin + "/metrics") as response:
                        metrics = await response.text()
                    assert _sum(metrics, "shadowproxy_requests_total") == REQUESTS
                    async with session.post(admin + "/shadow/pause") as response:
                        assert response.status == 200
                    for n in range(10):
                        async with aiohttp.ClientSession() as fresh, fresh.get(f"{url}/p/{n}") as r:
                            assert r.status == 200
                    async with session.get(admin + "/metrics") as response:
                        metrics = await response.text()
                    assert _sum(metrics, "shadowproxy_shadow_skipped_total", reason="paused") == 10
            finally:
                assert process.pid is not None
                os.kill(process.pid, signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), 60) == 0
        assert len(candidate.seen) == REQUESTS, "nothing was mirrored while paused"
        files = {p.name for p in tmp_path.glob("shadow-*.jsonl")}  # noqa: ASYNC240 - after the run
        assert len(files) == 2, "one evidence file per worker"
