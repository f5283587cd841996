"""Evidence written by a running proxy: bounded series, nothing lost on stop, rollups kept when
the disk cap fills. Redaction canaries: ``test_echoed_secrets.py``."""

from __future__ import annotations

import asyncio
import random
import string
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from shadowproxy.cli import main
from tests.support import (
    WAIT_S,
    backend,
    eventually,
    make_settings,
    proxy_process,
    running_proxy,
)


def _records(log_dir: Path, pattern: str = "shadow-*.jsonl*") -> list[dict[str, Any]]:
    """The complete lines of the files ``pattern`` names (a line being written is left out)."""
    records = []
    for path in sorted(log_dir.glob(pattern)):
        data = path.read_bytes()
        records.extend(orjson.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines())
    return records


def _rotated_rollups(log_dir: Path) -> list[Path]:
    return list(log_dir.glob("shadow-*.rollups.jsonl.*"))


def _evidence_bytes(log_dir: Path) -> int:
    return sum(p.stat().st_size for p in log_dir.glob("shadow-*"))


class TestBoundedSeries:
    """Raw paths never become labels: 10,000 random paths leave the series count bounded."""

    async def test_random_paths(self, tmp_path: Path) -> None:
        """Series per metric stay at most max_routes + 1 (``other``), whatever the paths."""

        async def ok(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        rng = random.Random(11)
        alphabet = string.ascii_lowercase

        def path() -> str:
            return "/" + "/".join(
                "".join(rng.choices(alphabet, k=rng.randint(2, 6)))
                for _ in range(rng.randint(1, 3))
            )

        paths = [path() for _ in range(10_000)]
        async with backend(ok) as legacy, backend(ok) as candidate:
            settings = make_settings(
                legacy.url,
                candidate.url,
                tmp_path,
                {"max_routes": 50, "shadow": {"sample_percent": 1}},
            )
            async with running_proxy(settings) as proxy:
                connector = aiohttp.TCPConnector(limit=16)
                async with aiohttp.ClientSession(connector=connector) as session:

                    async def worker(chunk: list[str]) -> None:
                        for p in chunk:
                            async with session.get(proxy.url + p) as response:
                                assert response.status == 200

                    await asyncio.gather(*(worker(paths[i::16]) for i in range(16)))
                routes = {
                    sample.labels["route"]
                    for metric in proxy.registry.collect()
                    for sample in metric.samples
                    if "route" in sample.labels
                }
                requests = sum(
                    sample.value
                    for metric in proxy.registry.collect()
                    if metric.name == "shadowproxy_requests"
                    for sample in metric.samples
                    if sample.name == "shadowproxy_requests_total"
                )
        assert requests == 10_000
        assert len(routes) <= 51
        assert "other" in routes


class TestNothingLostOnStop:
    """SIGTERM flushes every record of every answered request."""

    async def test_sigterm_flushes_all_records(self, tmp_path: Path) -> None:
        """N diverging requests, then SIGTERM: N exchange records and rollups counting N."""
        requests = 200

        async def legacy_handler(request: web.Request) -> web.Response:
            return web.json_response({"v": 1})

        async def candidate_handler(request: web.Request) -> web.Response:
            return web.json_response({"v": 2})

        async with backend(legacy_handler) as legacy, backend(candidate_handler) as candidate:
            async with proxy_process(
                "--legacy", legacy.url, "--candidate", candidate.url, "--log-dir", str(tmp_path)
            ) as proxy:
                async with aiohttp.ClientSession() as session:
                    for n in range(requests):
                        async with session.get(f"{proxy.url}/item/{n}") as response:
                            assert response.status == 200
                assert await proxy.terminate() == 0
        records = _records(tmp_path)
        exchanges = [r for r in records if r["type"] == "exchange"]
        rollups = [r for r in records if r["type"] == "rollup"]
        assert len(exchanges) == requests
        assert {r["verdict"] for r in exchanges} == {"diverged"}
        assert sum(r["compared"] for r in rollups) == requests
        assert sum(r["diverged"] for r in rollups) == requests


class TestDiskCapDuringARun:
    """A full disk cap costs exchange records, never the rollups the gates are computed from."""

    async def test_rollups_kept_and_exchange_drops_counted(self, tmp_path: Path) -> None:
        """Diverging traffic far beyond the cap: every rollup kept, every drop counted."""
        requests = 300

        def answer(side: str) -> Any:
            async def handler(request: web.Request) -> web.Response:
                return web.json_response({"side": side, "pad": side * 400})

            return handler

        document = {
            "evidence": {
                "max_total_bytes": 24_000,
                "rollup_interval_s": 1,
                "max_value_chars": 400,
            }
        }
        async with backend(answer("L")) as legacy, backend(answer("C")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, document)
            async with running_proxy(settings) as proxy, aiohttp.ClientSession() as session:
                # Six routes: each rollup tick needs more room than a record's worth of slack.
                for n in range(requests):
                    async with session.get(f"{proxy.url}/r{n % 6}/{n}") as response:
                        assert response.status == 200

                def rollups() -> list[dict[str, Any]]:
                    # Only the rollups files while the proxy runs: the cap deletes (and
                    # rotation renames) exchange files between a listing and a read, and
                    # it never deletes a rollups file this young.
                    found = _records(tmp_path, "shadow-*.rollups.jsonl*")
                    return [r for r in found if r["type"] == "rollup"]

                def settled() -> bool:
                    dropped = proxy.metric("shadowproxy_jsonl_dropped_total", reason="disk_cap")
                    found = rollups()
                    return sum(r["compared"] for r in found) == requests and dropped == sum(
                        r["exchanges_dropped"].get("disk_cap", 0) for r in found
                    )

                await eventually(settled)
                dropped = proxy.metric("shadowproxy_jsonl_dropped_total", reason="disk_cap")
                lost = proxy.metric("shadowproxy_rollups_dropped_total", reason="disk_cap")
        assert dropped > 0, "the cap was reached"
        assert lost == 0, "no rollup was dropped"
        assert sum(r["diverged"] for r in rollups()) == requests
        exchanges = [r for r in _records(tmp_path) if r["type"] == "exchange"]
        assert len(exchanges) < requests - dropped + 1
        assert _evidence_bytes(tmp_path) <= 24_000

    async def test_report_on_a_window_with_a_gap_is_not_pass(self, tmp_path: Path) -> None:
        """A run's own rollups cover its window; lost rollups files make it INSUFFICIENT."""

        async def ok(request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        logs, out = tmp_path / "logs", tmp_path / "out"
        out.mkdir()
        # One route and small files: every rotated rollups file holds one interval.
        document = {"evidence": {"rotate_bytes": 700, "rollup_interval_s": 1}}
        async with backend(ok) as legacy, backend(ok) as candidate:
            settings = make_settings(legacy.url, candidate.url, logs, document)
            async with running_proxy(settings) as proxy, aiohttp.ClientSession() as session:
                # Traffic until the rollups have rotated six times: load, not a wait;
                # every interval of the run then has its rollup.
                async with asyncio.timeout(3 * WAIT_S):
                    n = 0
                    while len(_rotated_rollups(logs)) < 6:
                        async with session.get(f"{proxy.url}/r/{n}") as response:
                            assert response.status == 200
                        n += 1
        gates = out / "gates.yaml"
        # Only coverage may decide here: every other gate is made easy to pass. A
        # second of slack lets a loaded machine stall between requests.
        gates.write_text(
            "gates:\n  '*': {max_gap: 1.5s, min_compared: 1, require_documented_semantic: false,"
            " max_p99_ratio: 1000, max_error_rate: 1}\n"
        )
        rollups = [r for r in _records(logs) if r["type"] == "rollup"]
        since = min(r["ts_start"] for r in rollups)
        until = max(r["ts_end"] for r in rollups)
        argv = ["report", str(logs), "--since", since, "--until", until, "--gates", str(gates)]

        def report() -> tuple[int, dict[str, Any]]:
            target = out / "report.json"
            code = main([*argv, "--format", "json", "--out", str(target)])
            return code, orjson.loads(target.read_bytes())

        code, whole = report()
        assert code == 0, [(g["name"], g["status"]) for g in whole["gates"]]
        assert [d["coverage"]["covered"] for d in whole["domains"]] == [True]
        # Two lost rotated rollups files (two seconds), from the middle of the series.
        for number in (2, 3):
            next(p for p in _rotated_rollups(logs) if p.name.endswith(f".{number}")).unlink()
        code, gapped = report()
        assert code != 0
        (coverage,) = (d["coverage"] for d in gapped["domains"])
        assert not coverage["covered"] and coverage["gaps"]
        statuses = {g["name"]: g["status"] for g in gapped["gates"]}
        assert statuses["coverage"] == "insufficient"
        assert "pass" not in statuses.values()
        assert {r["status"] for r in gapped["routes"]} == {"INSUFFICIENT_EVIDENCE"}
