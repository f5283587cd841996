"""--workers N: several processes share the port; one admin listener sums and controls them all."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ADMIN_AUTH, REPO, WAIT_S, backend, eventually, json_ok, proxy_process

REQUESTS = 60
STARTS = 10
"""How many times ``TestPorts`` starts two workers and an admin listener on port 0."""

FIVE_PORTS = (
    'ip link set lo up && echo "40000 40004" > /proc/sys/net/ipv4/ip_local_port_range && exec "$@"'
)
"""Inside a fresh network namespace: loopback up, five ephemeral ports, then the command.

A port bound and released is the next one ``bind(port 0)`` gets there (Linux
hands odd ports to it first and this range has two), so a supervisor that
released its workers' port before binding the admin listener would lose it.
"""


def _sum(metrics: str, sample_name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _summed(admin: str, sample_name: str, **labels: str) -> float:
    """``sample_name`` summed over the workers, as the supervisor's /metrics shows it now."""
    with urllib.request.urlopen(admin + "/metrics", timeout=WAIT_S) as response:
        return _sum(response.read().decode(), sample_name, **labels)


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
                    # Each worker writes its share at most 0.1 s late (docs/evidence.md).
                    admin = proxy.admin
                    await eventually(
                        lambda: _summed(admin, "shadowproxy_requests_total") == REQUESTS
                    )
                    pause = proxy.admin + "/shadow/pause"
                    async with session.post(pause, headers=ADMIN_AUTH) as response:
                        assert response.status == 200
                    for n in range(10):
                        async with (
                            aiohttp.ClientSession() as fresh,
                            fresh.get(f"{url}/p/{n}") as r,
                        ):
                            assert r.status == 200
                    await eventually(
                        lambda: (
                            _summed(admin, "shadowproxy_shadow_skipped_total", reason="paused")
                            == 10
                        )
                    )
                assert await proxy.terminate(60) == 0
        assert len(candidate.seen) == REQUESTS, "nothing was mirrored while paused"
        files = {p.name for p in tmp_path.glob("shadow-*.jsonl")}  # noqa: ASYNC240 - after the run
        # shadow-<host>-<pid>.jsonl and .rollups.jsonl: a worker may write either or both.
        writers = {name.removesuffix(".jsonl").removesuffix(".rollups") for name in files}
        pids = {writer.rpartition("-")[2] for writer in writers}
        assert pids == {str(pid) for pid in status["worker_pids"]}, f"files of each worker: {files}"


class TestWorkersReload:
    """SIGHUP to the supervisor: it validates, counts and forwards the reload to every worker."""

    async def test_sighup_reloads_supervisor_and_workers(self, tmp_path: Path) -> None:
        """A good file is applied everywhere and counted; a bad one is rejected and counted."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            path = tmp_path / "shadowproxy.yaml"

            def write(sample: int, inflight: int) -> None:
                path.write_text(
                    f"upstreams: {{legacy: '{legacy.url}', candidate: '{candidate.url}'}}\n"
                    f"log_dir: '{tmp_path}'\n"
                    f"shadow: {{max_loop_lag_ms: 60000, max_inflight: {inflight}}}\n"
                    f"routes: [{{match: '/r', domain: d, sample_percent: {sample}}}]\n"
                )

            write(0, 256)
            async with (
                proxy_process("--config", str(path), "--workers", "2") as proxy,
                aiohttp.ClientSession() as session,
            ):

                async def status_when(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
                    async with asyncio.timeout(WAIT_S):
                        while True:
                            async with session.get(proxy.admin + "/status") as response:
                                status: dict[str, Any] = await response.json()
                            if check(status):
                                return status
                            await asyncio.sleep(0.01)

                before = await status_when(lambda s: s["workers_ready"] == 2)
                assert before["reloads"] == {"applied": 0, "rejected": 0}
                write(100, 8)
                proxy.process.send_signal(signal.SIGHUP)
                after = await status_when(lambda s: s["reloads"]["applied"] == 1)
                assert after["restart_needed"] == ["shadow.max_inflight"]
                assert after["config_digest"] != before["config_digest"]
                # Each worker applies the forwarded SIGHUP itself: poll until one mirrors.
                async with asyncio.timeout(WAIT_S):
                    while not candidate.seen:
                        async with (
                            aiohttp.ClientSession() as fresh,
                            fresh.get(proxy.url + "/r") as r,
                        ):
                            assert r.status == 200
                        await asyncio.sleep(0.01)

                path.write_text("upstreams: [\n")
                proxy.process.send_signal(signal.SIGHUP)
                rejected = await status_when(lambda s: s["reloads"]["rejected"] == 1)
                assert rejected["config_digest"] == after["config_digest"]
                assert rejected["workers_ready"] == 2


def _isolated() -> list[str]:
    """A prefix running a command in a network namespace with five ephemeral ports; [] if none."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return []
    probe = subprocess.run(
        ["unshare", "--net", "sh", "-c", FIVE_PORTS, "sh", "true"], capture_output=True, check=False
    )
    return ["unshare", "--net", "sh", "-c", FIVE_PORTS, "sh"] if probe.returncode == 0 else []


class TestPorts:
    """The workers' ephemeral port is held from the moment it is picked."""

    @pytest.mark.slow
    async def test_two_workers_and_admin_on_port_zero_always_start(self) -> None:
        """Ten starts of --workers 2 with --admin on port 0: every one serves and stops cleanly."""
        prefix = _isolated()
        runs = asyncio.Semaphore(5)

        async def start(run: int) -> None:
            async with runs:
                process = await asyncio.create_subprocess_exec(
                    *prefix,
                    sys.executable,
                    "-m",
                    "tests.proxy.workers_start",
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=REPO,
                    env={**os.environ, "PYTHONPATH": str(REPO)},
                )
                output, _ = await asyncio.wait_for(process.communicate(), 120)
            assert process.returncode == 0, f"start {run}: {output.decode()[-3000:]}"

        async with asyncio.TaskGroup() as group:
            for run in range(STARTS):
                group.create_task(start(run))
