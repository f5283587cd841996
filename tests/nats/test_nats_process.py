"""NATS shadowing as a process: readiness from legacy's server; events matched once with workers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.nats.nats_support import client, nats_proxy, nats_server
from tests.support import eventually, proxy_process, records

ROUTE = "context.events.updated"
SECTION_EVENTS = {"subject": ROUTE, "candidate": "shadow.events", "correlation": "$.id"}


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


class TestReadiness:
    """/readyz reaches legacy's NATS server."""

    async def test_ready_with_nats_alone(self, tmp_path: Path) -> None:
        """A NATS-only proxy is ready while legacy's server takes connections."""
        async with nats_server() as server:
            section = {"server": {"url": server.url}, "events": [SECTION_EVENTS]}
            async with nats_proxy(tmp_path, section) as proxy:
                ready = await _get(proxy.admin + "/readyz")
        assert ready == (
            200,
            {"ready": True, "legacy": "reachable", "planes": {"nats": "reachable"}},
        )


class TestWorkers:
    """With --workers 2 requests are served by both; events are matched in one worker."""

    async def test_events_matched_once(self, tmp_path: Path) -> None:
        """Three pairs of events: three matched per side, not six."""
        async with nats_server() as server:
            config = tmp_path / "nats.yaml"
            config.write_text(
                orjson.dumps(
                    {
                        "admin_token": "t",
                        "shadow": {"max_loop_lag_ms": 60000},
                        "evidence": {"sample_matches_percent": 100},
                        "nats": {"server": {"url": server.url}, "events": [SECTION_EVENTS]},
                    }
                ).decode()
            )
            args = ("--config", str(config), "--workers", "2", "--log-dir", str(tmp_path / "logs"))
            async with proxy_process(*args) as running:
                async with client(server.url) as publisher:
                    for n in range(3):
                        await publisher.publish(ROUTE, orjson.dumps({"id": f"e{n}"}))
                        await publisher.publish("shadow.events", orjson.dumps({"id": f"e{n}"}))
                    await publisher.flush()

                async def matched() -> bool:
                    async with (
                        aiohttp.ClientSession() as session,
                        session.get(running.admin + "/metrics") as response,
                    ):
                        text = await response.text()
                    found = re.search(
                        r'shadowproxy_nats_events_total\{result="matched",route="'
                        + re.escape(ROUTE)
                        + r'",side="legacy"\} (\S+)',
                        text,
                    )
                    return found is not None and float(found.group(1)) >= 3

                await eventually(matched)
                assert await running.terminate() == 0
        # Evidence is flushed at stop: a pair matched in both workers would be filed twice.
        assert len(records(tmp_path, ROUTE)) == 3
