"""--workers N: several processes share the port; one admin listener sums and controls them all."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support import backend, json_ok, proxy_process

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
            async with proxy_process(
                "--legacy",
                legacy.url,
                "--candidate",
                candidate.url,
                "--log-dir",
                str(tmp_path),
                "--workers",
                "2",
            ) as proxy:
                url = proxy.url
                async with aiohttp.ClientSession() as session:
                    # The supervisor announces itself only once every worker listens.
                    async with session.get(proxy.admin + "/status") as response:
                        status = await response.json()
                    assert (status["workers_ready"], len(status["worker_pids"])) == (2, 2)
                    # A new connection per request lets the kernel spread them over workers.
                    for n in range(REQUESTS):
                        async with (
                            aiohttp.ClientSession() as fresh,
                            fresh.get(f"{url}/w/{n}") as r,
                        ):
                            assert r.status == 200
                    await candidate.wait_for(lambda seen: len(seen) == REQUESTS)
                    async with session.get(proxy.admin + "/metrics") as response:
                        metrics = await response.text()
                    assert _sum(metrics, "shadowproxy_requests_total") == REQUESTS
                    async with session.post(proxy.admin + "/shadow/pause") as response:
                        assert response.status == 200
                    for n in range(10):
                        async with (
                            aiohttp.ClientSession() as fresh,
                            fresh.get(f"{url}/p/{n}") as r,
                        ):
                            assert r.status == 200
                    async with session.get(proxy.admin + "/metrics") as response:
                        metrics = await response.text()
                    assert _sum(metrics, "shadowproxy_shadow_skipped_total", reason="paused") == 10
                assert await proxy.terminate(60) == 0
        assert len(candidate.seen) == REQUESTS, "nothing was mirrored while paused"
        files = {p.name for p in tmp_path.glob("shadow-*.jsonl")}  # noqa: ASYNC240 - after the run
        assert len(files) == 2, "one evidence file per worker"
