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

from shadowproxy.admin.app import WRITES_OFF
from shadowproxy.config import load_settings
from tests.cutover.cutover_support import records
from tests.support import (
    ADMIN_AUTH,
    ADMIN_TOKEN,
    backend,
    config_error,
    json_ok,
    make_settings,
    running_proxy,
)


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
                    {"ready": True, "legacy": "reachable", "planes": {"http": "reachable"}},
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
                    {"ready": False, "legacy": "unreachable", "planes": {"http": "unreachable"}},
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


STATE_CHANGING = [
    ("POST", "/shadow/pause", None),
    ("POST", "/shadow/resume", None),
    ("POST", "/cutover", {"route": "/a", "mode": "candidate"}),
    ("POST", "/cutover//a", {"mode": "candidate"}),
    ("POST", "/cutover/force-legacy", None),
    ("DELETE", "/cutover/force-legacy", None),
    ("POST", "/cutover/drill", {"route": "/a", "passed": True}),
]
"""Every admin call that changes state, with a body it would accept."""

ROUTE = {"routes": [{"match": "/a", "domain": "d"}]}


async def _call(
    base: str, method: str, path: str, body: object, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def _raw_post(base: str, path: str, authorization: bytes) -> bytes:
    """POST with an Authorization header of exactly these bytes; the status line."""
    host, _, port = base.removeprefix("http://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST %s HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n"
        b"Authorization: %s\r\n\r\n" % (path.encode(), authorization)
    )
    status = await reader.readline()
    writer.close()
    return status.rstrip()


class TestToken:
    """A configured token guards every state-changing call, on loopback too."""

    async def test_every_state_changing_call_needs_it_on_loopback(self, tmp_path: Path) -> None:
        """No, a wrong or a non-bearer token: 401 on every call, and nothing moves."""
        async with backend(json_ok) as legacy:
            settings = make_settings(legacy.url, legacy.url, tmp_path, ROUTE)
            assert settings.admin.listen.host == "127.0.0.1"
            async with running_proxy(settings) as proxy:
                for method, path, body in STATE_CHANGING:
                    for headers in (
                        None,
                        {"Authorization": "Bearer wrong"},
                        {"Authorization": ADMIN_TOKEN},
                        {"Authorization": f"Basic {ADMIN_TOKEN}"},
                    ):
                        status, answer = await _call(proxy.admin, method, path, body, headers)
                        assert (status, answer) == (401, {"error": "bearer token required"}), (
                            method,
                            path,
                            headers,
                        )
                _, state = await _get(proxy.admin + "/status")
                _, cutover = await _get(proxy.admin + "/cutover")
                status, _ = await _call(proxy.admin, "POST", "/shadow/pause", None, ADMIN_AUTH)
                _, paused = await _get(proxy.admin + "/status")
        assert state["shadow"] == "on"
        assert (cutover["routes"]["/a"]["mode"], cutover["force_legacy"]) == ("shadow", False)
        assert records(tmp_path, "drill") == []
        assert (status, paused["shadow"]) == (200, "paused")

    async def test_token_is_compared_as_bytes(self, tmp_path: Path) -> None:
        """A non-ASCII token: a wrong one is 401 (never a 500), its UTF-8 bytes pass."""
        token = "t\u00f6k\u00e9n-\u2713"
        async with backend(json_ok) as legacy:
            settings = make_settings(legacy.url, legacy.url, tmp_path, {"admin_token": token})
            async with running_proxy(settings) as proxy:
                wrong = await _raw_post(
                    proxy.admin, "/shadow/pause", "Bearer t\u00f6k\u00e9n-\u2717".encode()
                )
                latin = await _raw_post(proxy.admin, "/shadow/pause", b"Bearer t\xf6k\xe9n-?")
                invalid = await _raw_post(proxy.admin, "/shadow/pause", b"Bearer \xff\xfe")
                _, before = await _get(proxy.admin + "/status")
                right = await _raw_post(proxy.admin, "/shadow/pause", f"Bearer {token}".encode())
                _, after = await _get(proxy.admin + "/status")
        assert [wrong, latin, invalid] == [b"HTTP/1.1 401 Unauthorized"] * 3
        assert before["shadow"] == "on"
        assert (right, after["shadow"]) == (b"HTTP/1.1 200 OK", "paused")

    async def test_without_a_token_writes_are_off(self, tmp_path: Path) -> None:
        """No token and no opt-in: every state-changing call is 403; GETs still answer."""
        async with backend(json_ok) as legacy:
            doc = {**ROUTE, "admin_token": None}
            settings = make_settings(legacy.url, legacy.url, tmp_path, doc)
            async with running_proxy(settings) as proxy:
                answers = [
                    await _call(proxy.admin, method, path, body)
                    for method, path, body in STATE_CHANGING
                ]
                status, state = await _get(proxy.admin + "/status")
        assert answers == [(403, {"error": WRITES_OFF})] * len(STATE_CHANGING)
        assert (status, state["shadow"]) == (200, "on")

    async def test_loopback_opt_in_takes_calls_without_a_token(self, tmp_path: Path) -> None:
        """admin_allow_unauthenticated_loopback: true, no token: the kill switch answers anyone."""
        doc = {"admin_token": None, "admin_allow_unauthenticated_loopback": True}
        async with backend(json_ok) as legacy:
            settings = make_settings(legacy.url, legacy.url, tmp_path, doc)
            async with running_proxy(settings) as proxy:
                status, answer = await _call(proxy.admin, "POST", "/shadow/pause", None)
        assert (status, answer) == (200, {"shadow": "paused"})

    async def test_opt_in_with_a_token_still_needs_the_token(self, tmp_path: Path) -> None:
        """The opt-in never weakens a configured token."""
        doc = {"admin_allow_unauthenticated_loopback": True}
        async with backend(json_ok) as legacy:
            settings = make_settings(legacy.url, legacy.url, tmp_path, doc)
            async with running_proxy(settings) as proxy:
                status, _ = await _call(proxy.admin, "POST", "/shadow/pause", None)
        assert status == 401

    def test_opt_in_beyond_loopback_is_a_config_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The opt-in on an admin listener beyond loopback exits 2 naming the key."""
        document = (
            "upstreams: {legacy: 'http://127.0.0.1:1', candidate: 'http://127.0.0.1:2'}\n"
            "admin: 0.0.0.0:9901\nadmin_token: t\nadmin_allow_unauthenticated_loopback: true\n"
        )
        assert config_error(document, tmp_path, capsys) == (
            "admin_allow_unauthenticated_loopback: the admin listener binds beyond loopback"
            " (0.0.0.0)\n"
        )


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
