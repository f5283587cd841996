"""The admin listener: health, readiness, status, metrics, the kill switch's token and SIGHUP."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shadowproxy.admin.app import AdminContext, build_admin_app
from shadowproxy.config import load_settings
from shadowproxy.shadow.control import ShadowSwitch
from tests.support import backend, json_ok, make_settings, running_proxy


async def _get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


class TestEndpoints:
    """GET endpoints answer what probes and operators need."""

    async def test_health_ready_status_metrics(self, tmp_path: Path) -> None:
        """/healthz, /readyz, /status and /metrics answer on the admin port."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path)
            async with running_proxy(settings) as proxy:
                assert await _get(proxy.admin + "/healthz") == (200, {"status": "ok"})
                assert await _get(proxy.admin + "/readyz") == (
                    200,
                    {"ready": True, "legacy": "reachable"},
                )
                status, body = await _get(proxy.admin + "/status")
                async with aiohttp.ClientSession() as session:
                    async with session.get(proxy.admin + "/metrics") as response:
                        metrics = await response.text()
                        content_type = response.headers["Content-Type"]
        assert status == 200
        assert body["shadow"] == "on"
        assert body["config_digest"] == settings.digest
        assert body["upstreams"] == {
            "legacy": legacy.url,
            "candidate": candidate.url,
            "secondary": None,
        }
        assert {"version", "inflight", "max_inflight", "evidence"} <= set(body)
        assert content_type.startswith("text/plain")
        assert 'shadowproxy_build_info{version="' in metrics

    async def test_ready_fails_when_legacy_is_down(self, tmp_path: Path, closed_port: int) -> None:
        """/readyz answers 503 while legacy refuses connections."""
        async with backend(json_ok) as candidate:
            settings = make_settings(f"http://127.0.0.1:{closed_port}", candidate.url, tmp_path)
            async with running_proxy(settings) as proxy:
                assert await _get(proxy.admin + "/readyz") == (
                    503,
                    {"ready": False, "legacy": "unreachable"},
                )

    async def test_configured_routes_start_at_zero(self, tmp_path: Path) -> None:
        """Configured routes have series from the first scrape, so increase() sees the first."""
        routes = {"routes": [{"match": "/orders/{id}", "domain": "orders"}]}
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, routes)
            async with running_proxy(settings) as proxy:
                labels = {"route": "/orders/{id}", "domain": "orders"}
                comparisons = proxy.registry.get_sample_value(
                    "shadowproxy_comparisons_total", {**labels, "verdict": "match"}
                )
                divergences = proxy.registry.get_sample_value(
                    "shadowproxy_divergences_total", {**labels, "class": "structural"}
                )
        assert (comparisons, divergences) == (0.0, 0.0)


class TestToken:
    """Beyond loopback, the kill switch needs the bearer token."""

    @pytest.fixture
    def switch(self) -> ShadowSwitch:
        return ShadowSwitch()

    def _app(self, switch: ShadowSwitch) -> aiohttp.web.Application:
        return build_admin_app(
            AdminContext(
                switch=switch,
                render_metrics=lambda: (b"", "text/plain"),
                status=dict,
                legacy_url="http://127.0.0.1:1",
                token="s3cret-token",
                require_token=True,
            )
        )

    async def test_post_without_token_is_refused(
        self, aiohttp_client: object, switch: ShadowSwitch
    ) -> None:
        """No or a wrong token: 401 and the switch does not move."""
        client = await aiohttp_client(self._app(switch))  # type: ignore[operator]
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            response = await client.post("/shadow/pause", headers=headers)
            assert response.status == 401
        assert not switch.paused

    async def test_post_with_token(self, aiohttp_client: object, switch: ShadowSwitch) -> None:
        """The right bearer token pauses and resumes."""
        client = await aiohttp_client(self._app(switch))  # type: ignore[operator]
        auth = {"Authorization": "Bearer s3cret-token"}
        assert (await client.post("/shadow/pause", headers=auth)).status == 200
        assert switch.paused
        assert (await client.post("/shadow/resume", headers=auth)).status == 200
        assert not switch.paused
        assert (await client.get("/healthz")).status == 200, "GETs stay open for probes"


class TestReload:
    """SIGHUP reloads routes, sampling and rules; a bad file keeps the running config."""

    async def test_sighup_good_then_bad_config(self, tmp_path: Path) -> None:
        """A valid new file takes effect; an invalid one is rejected and the old one stays."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            path = tmp_path / "shadowproxy.yaml"

            def write(sample: object) -> None:
                path.write_text(
                    f"upstreams: {{legacy: '{legacy.url}', candidate: '{candidate.url}'}}\n"
                    "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n"
                    f"log_dir: '{tmp_path / 'logs'}'\nshadow: {{grace_s: 0.5}}\n"
                    f"routes: [{{match: '/r', domain: d, sample_percent: {sample}}}]\n"
                )

            write(0)
            settings = load_settings(str(path))
            async with running_proxy(settings, reload=lambda: load_settings(str(path))) as proxy:
                async with aiohttp.ClientSession() as session:
                    async with session.get(proxy.url + "/r") as response:
                        assert response.status == 200
                    assert (
                        proxy.metric("shadowproxy_shadow_skipped_total", reason="sampled_out") == 1
                    )

                    write(100)
                    os.kill(os.getpid(), signal.SIGHUP)
                    status = await _status_when(proxy.admin, lambda s: s["reloads"]["applied"] == 1)
                    # The runbook's check: the running digest is the new file's.
                    assert status["config_digest"] == load_settings(str(path)).digest
                    assert status["config_digest"] != settings.digest
                    assert status["restart_needed"] == []
                    async with session.get(proxy.url + "/r") as response:
                        assert response.status == 200
                    await candidate.wait_for(lambda seen: len(seen) == 1)

                    path.write_text("upstreams: [\n")
                    os.kill(os.getpid(), signal.SIGHUP)
                    rejected = await _status_when(
                        proxy.admin, lambda s: s["reloads"]["rejected"] == 1
                    )
                    assert rejected["config_digest"] == status["config_digest"]
                    async with session.get(proxy.url + "/r") as response:
                        assert response.status == 200
                    await candidate.wait_for(lambda seen: len(seen) == 2)

    async def test_sighup_leaves_restart_only_keys_as_they_run(self, tmp_path: Path) -> None:
        """Routes change; a new legacy URL and pool bound wait for a restart, and say so."""
        async with (
            backend(json_ok) as legacy,
            backend(json_ok) as other,
            backend(json_ok) as candidate,
        ):
            path = tmp_path / "shadowproxy.yaml"

            def write(legacy_url: str, sample: int, inflight: int) -> None:
                path.write_text(
                    f"upstreams: {{legacy: '{legacy_url}', candidate: '{candidate.url}'}}\n"
                    "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n"
                    f"log_dir: '{tmp_path / 'logs'}'\n"
                    f"shadow: {{grace_s: 0.5, max_inflight: {inflight}}}\n"
                    f"routes: [{{match: '/r', domain: d, sample_percent: {sample}}}]\n"
                )

            write(legacy.url, 0, 256)
            settings = load_settings(str(path))
            async with running_proxy(settings, reload=lambda: load_settings(str(path))) as proxy:
                write(other.url, 100, 8)
                os.kill(os.getpid(), signal.SIGHUP)
                status = await _status_when(proxy.admin, lambda s: s["reloads"]["applied"] == 1)
                assert status["restart_needed"] == ["upstreams.legacy", "shadow.max_inflight"]
                assert status["upstreams"]["legacy"] == legacy.url
                assert status["max_inflight"] == 256
                # The file is not wholly live: its digest is not the running one.
                assert status["config_digest"] not in {
                    settings.digest,
                    load_settings(str(path)).digest,
                }
                async with aiohttp.ClientSession() as session, session.get(proxy.url + "/r") as r:
                    assert r.status == 200
                await candidate.wait_for(lambda seen: len(seen) == 1)
        assert (len(legacy.seen), len(other.seen)) == (1, 0)


async def _status_when(admin: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll /status until ``check`` holds (bounded): a signal offers nothing else to await."""
    async with asyncio.timeout(10):
        while True:
            _, status = await _get(admin + "/status")
            if check(status):
                return status
            await asyncio.sleep(0.01)
