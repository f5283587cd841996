"""Dry-run writes: the candidate checks a write and commits nothing; compared like reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.support import (
    backend,
    config_error,
    eventually,
    json_ok,
    make_settings,
    running_proxy,
)
from tests.writes.orders import DRY_RUN, orders_service

ORDERS = {
    "routes": [{"match": "/orders", "domain": "orders", "mirror_writes": "dry_run"}],
    "evidence": {"sample_matches_percent": 100},
    "compare": {"headers": ["x-total"]},
}


def exchanges(log_dir: Path) -> list[dict[str, Any]]:
    """Every exchange record written so far."""
    records = [
        orjson.loads(line)
        for path in sorted(log_dir.glob("shadow-*.jsonl*"))
        for line in path.read_bytes().splitlines()
        if line
    ]
    return [r for r in records if r["type"] == "exchange"]


async def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers=headers) as response:
            return response.status, await response.json()


class TestDryRun:
    async def test_write_is_compared_and_not_committed(self, tmp_path: Path) -> None:
        """The candidate answers the dry-run copy, the answers match, its store stays empty."""
        async with (
            orders_service(tmp_path) as (legacy, legacy_store),
            orders_service(tmp_path, dry_run=True) as (cand, cand_store),
        ):
            settings = make_settings(legacy.url, cand.url, tmp_path / "logs", ORDERS)
            async with running_proxy(settings) as proxy:
                status, answer = await _post(f"{proxy.url}/orders", {"item": "lamp", "qty": 2})
                await eventually(lambda: len(exchanges(tmp_path / "logs")) == 1)
        assert (status, answer["item"], answer["qty"]) == (200, "lamp", 2)
        record = exchanges(tmp_path / "logs")[0]
        assert (record["method"], record["verdict"]) == ("POST", "match")
        assert (legacy_store.count(), cand_store.count()) == (1, 0)
        copy = cand.seen[0].headers
        assert [v for k, v in copy if k.lower() == DRY_RUN.lower()] == ["1"]
        assert all(k.lower() != DRY_RUN.lower() for k, _ in legacy.seen[0].headers)

    async def test_a_different_answer_diverges_like_a_read(self, tmp_path: Path) -> None:
        """A candidate pricing the dry-run write otherwise is a difference in the record."""
        async with (
            orders_service(tmp_path) as (legacy, _),
            orders_service(tmp_path, first_id=2, dry_run=True, price=11) as (cand, cand_store),
        ):
            settings = make_settings(legacy.url, cand.url, tmp_path / "logs", ORDERS)
            async with running_proxy(settings) as proxy:
                await _post(f"{proxy.url}/orders", {"item": "lamp", "qty": 2})
                await eventually(lambda: len(exchanges(tmp_path / "logs")) == 1)
        record = exchanges(tmp_path / "logs")[0]
        found = {(d["kind"], d["path"], d["legacy"], d["candidate"]) for d in record["differences"]}
        assert record["verdict"] == "diverged"
        assert ("header", "x-total", "20", "22") in found
        assert ("value", "$.id", 1, 2) in found
        assert cand_store.count() == 0

    async def test_a_client_cannot_turn_the_dry_run_off(self, tmp_path: Path) -> None:
        """With a header of another name configured, the copy carries exactly the proxy's value."""
        document = {
            **ORDERS,
            "shadow": {"dry_run_header": "X-Dry-Run", "dry_run_value": "1"},
        }
        async with (
            orders_service(tmp_path) as (legacy, _),
            orders_service(tmp_path, first_id=5, dry_run=True, dry_run_header="X-Dry-Run") as (
                cand,
                cand_store,
            ),
        ):
            settings = make_settings(legacy.url, cand.url, tmp_path / "logs", document)
            async with running_proxy(settings) as proxy:
                await _post(
                    f"{proxy.url}/orders",
                    {"item": "lamp", "qty": 1},
                    {"X-Dry-Run": "0", "x-dry-run": "false"},
                )
                await cand.wait_for(lambda seen: len(seen) == 1)
        assert [v for k, v in cand.seen[0].headers if k.lower() == "x-dry-run"] == ["1"]
        assert cand_store.count() == 0

    async def test_reads_carry_no_dry_run_header(self, tmp_path: Path) -> None:
        """Only a write's copy is a dry run; a read on the same route is copied as usual."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, ORDERS)
            async with running_proxy(settings) as proxy:
                async with aiohttp.ClientSession() as session:
                    async with session.get(f"{proxy.url}/orders") as response:
                        assert response.status == 200
                await candidate.wait_for(lambda seen: len(seen) == 1)
        assert all(k.lower() != DRY_RUN.lower() for k, _ in candidate.seen[0].headers)

    async def test_candidate_mode_never_copies_a_dry_run_write_to_legacy(
        self, tmp_path: Path
    ) -> None:
        """When the candidate answers, legacy knows no dry-run header: the write is not copied."""
        document = {
            "routes": [
                {
                    "match": "/orders",
                    "domain": "orders",
                    "mirror_writes": "dry_run",
                    "mode": "candidate",
                }
            ]
        }
        async with (
            orders_service(tmp_path) as (legacy, legacy_store),
            orders_service(tmp_path, first_id=7, dry_run=True) as (cand, cand_store),
        ):
            settings = make_settings(legacy.url, cand.url, tmp_path / "logs", document)
            async with running_proxy(settings) as proxy:
                status, answer = await _post(f"{proxy.url}/orders", {"item": "lamp", "qty": 1})
                skipped = proxy.metric("shadowproxy_shadow_skipped_total", reason="method")
        assert (status, answer["id"]) == (200, 7)
        assert (legacy.seen, legacy_store.count(), cand_store.count()) == ([], 0, 1)
        assert skipped == 1

    async def test_the_secondary_never_gets_a_write(self, tmp_path: Path) -> None:
        """A second legacy instance shares legacy's store: a copied write would happen twice."""
        async with (
            backend(json_ok) as legacy,
            backend(json_ok) as candidate,
            backend(json_ok) as secondary,
        ):
            settings = make_settings(
                legacy.url, candidate.url, tmp_path, ORDERS, secondary=secondary.url
            )
            async with running_proxy(settings) as proxy:
                async with aiohttp.ClientSession() as session:
                    async with session.post(f"{proxy.url}/orders", json={}) as response:
                        assert response.status == 200
                    async with session.get(f"{proxy.url}/orders") as response:
                        assert response.status == 200
                await secondary.wait_for(lambda seen: len(seen) == 1)
                await candidate.wait_for(lambda seen: len(seen) == 2)
        assert [s.method for s in secondary.seen] == ["GET"]
        assert [s.method for s in candidate.seen] == ["POST", "GET"]


class TestDryRunConfig:
    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            (
                "routes: [{match: /a, mirror_writes: maybe}]\n",
                "routes[0].mirror_writes: must be true, false or dry_run\n",
            ),
            (
                "routes: [{match: /a, mirror_writes: 1}]\n",
                "routes[0].mirror_writes: must be true, false or dry_run\n",
            ),
            (
                "shadow: {dry_run_header: 'X Dry'}\n",
                "shadow.dry_run_header: must be a header name\n",
            ),
            (
                "shadow: {dry_run_value: ' 1'}\n",
                "shadow.dry_run_value: must be printable, without leading or trailing spaces\n",
            ),
        ],
    )
    def test_bad_values_name_the_key(
        self, document: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad dry-run setting exits 2 with one line naming the key."""
        upstreams = "upstreams: {legacy: 'http://127.0.0.1:1', candidate: 'http://127.0.0.1:2'}\n"
        assert config_error(upstreams + document, tmp_path, capsys) == expected

    def test_dry_run_is_a_write_mirror(self, tmp_path: Path) -> None:
        """``mirror_writes: dry_run`` mirrors writes and marks the route a dry run."""
        settings = make_settings("http://127.0.0.1:1", "http://127.0.0.1:2", tmp_path, ORDERS)
        route = settings.routes[0]
        assert (route.mirror_writes, route.dry_run, settings.shadow.dry_run_header) == (
            True,
            True,
            "X-Shadow-Dry-Run",
        )
