"""A misbehaving legacy: the client gets an honest failure and nothing is compared."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from shadowproxy.settings import Settings
from tests.hardening.harden import fetch, strict_lines
from tests.relay import Fault, Toxic, relay
from tests.support import (
    RunningProxy,
    backend,
    eventually,
    json_ok,
    make_settings,
    running_proxy,
)

TIMEOUT_S = 0.3
CONNECT_TIMEOUT_S = 2.0


def _settings(legacy: str, candidate: str, log_dir: Path) -> Settings:
    return make_settings(
        legacy,
        candidate,
        log_dir,
        {
            "legacy": {"timeout_s": TIMEOUT_S, "connect_timeout_s": CONNECT_TIMEOUT_S},
            "shadow": {"grace_s": 0.5},
        },
    )


def _compared(proxy: RunningProxy, route: str) -> float:
    return sum(
        proxy.metric(
            "shadowproxy_comparisons_total", route=route, domain="default", verdict=verdict
        )
        for verdict in ("match", "diverged", "noise", "error")
    )


class TestLegacyDown:
    """Legacy refusing or resetting before an answer gives 502; hanging gives 504."""

    async def test_down_is_502_within_the_connect_timeout(self, tmp_path: Path) -> None:
        """Nothing listening on legacy's port answers 502 well inside the connect timeout."""
        async with backend(json_ok) as candidate, relay(toxic=Toxic(Fault.REFUSE)) as legacy:
            async with running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                started = time.perf_counter()
                status, body = await fetch(proxy.url + "/down")
                elapsed = time.perf_counter() - started
                await eventually(
                    lambda: (
                        proxy.metric("shadowproxy_shadow_skipped_total", reason="legacy_failed")
                        == 1
                    )
                )
                compared = _compared(proxy, "/down")
        assert (status, json.loads(body)) == (502, {"error": "refused", "upstream": "legacy"})
        assert elapsed / CONNECT_TIMEOUT_S < 1.0
        assert compared == 0

    async def test_reset_before_answer_is_502(self, tmp_path: Path) -> None:
        """Legacy resetting the connection after the request head answers 502 ``reset``."""
        async with backend(json_ok) as candidate, relay(toxic=Toxic(Fault.RESET)) as legacy:
            async with running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                status, body = await fetch(proxy.url + "/reset")
        assert status == 502
        assert json.loads(body)["upstream"] == "legacy"

    async def test_hang_is_504_at_the_legacy_timeout(self, tmp_path: Path) -> None:
        """Legacy accepting and never answering gives 504 after legacy.timeout_s."""
        async with backend(json_ok) as candidate, relay(toxic=Toxic(Fault.HANG)) as legacy:
            async with running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                started = time.perf_counter()
                status, body = await fetch(proxy.url + "/hang")
                elapsed = time.perf_counter() - started
        assert (status, json.loads(body)) == (504, {"error": "timeout", "upstream": "legacy"})
        assert 1.0 <= elapsed / TIMEOUT_S < 3.0


class TestLegacyMidBody:
    """Legacy failing after the status line was relayed aborts the client connection."""

    async def test_reset_mid_body_aborts_and_mirrors_nothing(self, tmp_path: Path) -> None:
        """The client sees a broken body, no comparison is recorded, skip is legacy_failed."""

        async def big(request: web.Request) -> web.Response:
            return web.json_response({"rows": list(range(5000))})

        async with backend(big) as origin, backend(big) as candidate:
            async with relay(origin.url, Toxic(Fault.TRUNCATE, keep_bytes=3000)) as legacy:
                async with running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                    with pytest.raises(aiohttp.ClientPayloadError):
                        await fetch(proxy.url + "/rows")
                    await eventually(
                        lambda: (
                            proxy.metric("shadowproxy_shadow_skipped_total", reason="legacy_failed")
                            == 1
                        )
                    )
                    legacy_errors = proxy.metric(
                        "shadowproxy_upstream_errors_total", upstream="legacy", reason="incomplete"
                    )
                    compared = _compared(proxy, "/rows")
        assert legacy_errors == 1
        assert compared == 0
        assert [r for r in strict_lines(tmp_path) if r["type"] == "exchange"] == []
