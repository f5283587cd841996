"""With --workers 2, a switch made on the supervisor and a rollback made in one worker reach all."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from tests.cutover.cutover_support import TOKEN, admin, probe
from tests.support import WAIT_S, backend, proxy_process

CONFIG = (
    f"admin_token: {TOKEN}\n"
    + """
routes:
  - {match: "/a/*", name: "/a", domain: orders}
shadow: {max_loop_lag_ms: 10000}
cutover:
  rollback: {min_samples: 5, max_error_rate: 0.1, max_structural_rate: 1, max_p99_ratio: 1000000}
"""
)
STREAK = 20
"""Fresh connections in a row from one side: the kernel spreads them over both workers."""


async def _all_answered_by(url: str, wanted: str) -> None:
    streak = 0
    async with asyncio.timeout(WAIT_S):
        while streak < STREAK:
            answered_by = (await probe(url))[1]
            streak = streak + 1 if answered_by == wanted else 0


class TestWorkers:
    """Ownership state is shared through the supervisor's state file."""

    async def test_switch_and_rollback_reach_every_worker(self, tmp_path: Path) -> None:
        """An admin switch moves both workers; a rollback in one worker moves both back."""
        failing = asyncio.Event()

        async def candidate_handler(request: web.Request) -> web.Response:
            return web.json_response({"side": "candidate"}, status=500 if failing.is_set() else 200)

        async def legacy_handler(request: web.Request) -> web.Response:
            return web.json_response({"side": "legacy"})

        config = tmp_path / "c.yaml"
        config.write_text(CONFIG)
        async with backend(legacy_handler) as legacy, backend(candidate_handler) as candidate:
            async with proxy_process(
                "--config", str(config), "--legacy", legacy.url, "--candidate", candidate.url,
                "--log-dir", str(tmp_path / "logs"), "--workers", "2",
            ) as proxy:  # fmt: skip
                status, _ = await admin(
                    proxy.admin, "POST", "/cutover", {"route": "/a", "mode": "candidate"}
                )
                assert status == 200
                await _all_answered_by(proxy.url + "/a/1", "candidate")
                failing.set()
                await _all_answered_by(proxy.url + "/a/1", "legacy")
                _, listing = await admin(proxy.admin, "GET", "/cutover")
                assert await proxy.terminate(60) == 0
        assert listing["routes"]["/a"]["mode"] == "shadow"
        assert [(r["source"], r["to"]) for r in listing["history"]] == [
            ("api", "candidate"),
            ("rollback", "shadow"),
        ]
