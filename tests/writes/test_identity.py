"""Identity mapping: ids created in two stores, remembered as pairs, rewritten and equated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shadowproxy.model import DiffClass, Difference, Observation, Outcome, Verdict
from shadowproxy.settings import RouteIdentity
from shadowproxy.shadow.identity import MAPPED_ID, IdentityMap
from tests.support import config_error, eventually, make_settings, running_proxy
from tests.writes.orders import orders_service
from tests.writes.test_dry_run import exchanges

IDS: dict[str, Any] = {
    "routes": [
        {
            "match": "/orders",
            "methods": ["POST"],
            "domain": "orders",
            "mirror_writes": True,
            "identity": {"create": ["$.id"]},
        },
        {"match": "/orders", "methods": ["GET"], "domain": "orders", "identity": {"query": ["id"]}},
        {
            "match": "/orders/lookup",
            "domain": "orders",
            "mirror_writes": True,
            "identity": {"body": ["$.order_id"]},
        },
        {
            "match": "/orders/{id}/items",
            "domain": "orders",
            "mirror_writes": True,
            "identity": {"path": ["id"]},
        },
        {"match": "/orders/{id}", "domain": "orders", "identity": {"path": ["{id}"]}},
    ],
    "evidence": {"sample_matches_percent": 100},
}
JSON = (("Content-Type", "application/json"),)
SPEC = RouteIdentity(family="orders", create=("$.id",), path=(2,), query=("id",), body=("$.id",))


def _answer(body: bytes) -> Observation:
    return Observation(200, JSON, body, body_size=len(body))


class TestTwoStores:
    async def test_ids_are_mapped_across_two_stores(self, tmp_path: Path) -> None:
        """A created order is read, looked up and changed through legacy's id on both sides."""
        logs = tmp_path / "logs"
        async with (
            orders_service(tmp_path) as (legacy, legacy_store),
            orders_service(tmp_path, first_id=1001, id_prefix="ord_") as (cand, cand_store),
        ):
            async with running_proxy(make_settings(legacy.url, cand.url, logs, IDS)) as proxy:
                async with aiohttp.ClientSession() as session:
                    created = await session.post(
                        f"{proxy.url}/orders", json={"item": "lamp", "qty": 1}
                    )
                    assert (await created.json())["id"] == 1
                    await eventually(lambda: len(exchanges(logs)) == 1)
                    for method, target, body in [
                        ("GET", "/orders/1", None),
                        ("GET", "/orders?id=1", None),
                        ("POST", "/orders/lookup", {"order_id": 1}),
                        ("POST", "/orders/1/items", None),
                    ]:
                        async with session.request(method, proxy.url + target, json=body) as r:
                            assert r.status == 200
                await eventually(lambda: len(exchanges(logs)) == 5)
        records = exchanges(logs)
        assert [r["verdict"] for r in records] == ["match"] * 5, records
        assert records[0]["equivalences"] == {MAPPED_ID: 2}  # $.id and $.href
        assert [s.path for s in cand.seen[1:]] == [
            "/orders/ord_1001",
            "/orders?id=ord_1001",
            "/orders/lookup",
            "/orders/ord_1001/items",
        ]
        assert cand.seen[3].body == b'{"order_id":"ord_1001"}'
        assert (legacy_store.count(), cand_store.count()) == (1, 1)

    async def test_candidate_mode_maps_the_candidates_ids_back(self, tmp_path: Path) -> None:
        """When the candidate answers, clients hold its ids: legacy's copy gets legacy's."""
        logs = tmp_path / "logs"
        routes = {
            **IDS,
            "routes": [
                {**IDS["routes"][0], "mode": "candidate"},
                {**IDS["routes"][4], "mode": "candidate"},
            ],
        }
        async with (
            orders_service(tmp_path) as (legacy, _),
            orders_service(tmp_path, first_id=1001, id_prefix="ord_") as (cand, _),
        ):
            async with running_proxy(make_settings(legacy.url, cand.url, logs, routes)) as proxy:
                async with aiohttp.ClientSession() as session:
                    created = await session.post(
                        f"{proxy.url}/orders", json={"item": "lamp", "qty": 1}
                    )
                    assert (await created.json())["id"] == "ord_1001"
                    await eventually(lambda: len(exchanges(logs)) == 1)
                    async with session.get(f"{proxy.url}/orders/ord_1001") as response:
                        assert response.status == 200
                await eventually(lambda: len(exchanges(logs)) == 2)
        assert [s.path for s in legacy.seen] == ["/orders", "/orders/1"]
        assert [r["verdict"] for r in exchanges(logs)] == ["match", "match"]

    async def test_without_mapping_the_read_diverges(self, tmp_path: Path) -> None:
        """The same read on a route without identity reaches the candidate with legacy's id."""
        logs = tmp_path / "logs"
        routes = {**IDS, "routes": [*IDS["routes"][:1], {"match": "/orders/{id}"}]}
        async with (
            orders_service(tmp_path) as (legacy, _),
            orders_service(tmp_path, first_id=1001, id_prefix="ord_") as (cand, _),
        ):
            async with running_proxy(make_settings(legacy.url, cand.url, logs, routes)) as proxy:
                async with aiohttp.ClientSession() as session:
                    await session.post(f"{proxy.url}/orders", json={"item": "lamp", "qty": 1})
                    await eventually(lambda: len(exchanges(logs)) == 1)
                    await session.get(f"{proxy.url}/orders/1")
                await eventually(lambda: len(exchanges(logs)) == 2)
        assert exchanges(logs)[1]["verdict"] == "diverged"
        assert cand.seen[1].path == "/orders/1"


class TestIdentityMap:
    def test_unknown_ids_pass_unchanged(self) -> None:
        """An id the family does not hold (a migrated store keeps legacy's ids) is left alone."""
        ids = IdentityMap(10)
        ids.learn(SPEC, _answer(b'{"id": 1}'), _answer(b'{"id": "c1"}'), 1 << 20)
        target, body = ids.rewrite(SPEC, "/orders/2?id=1&x=1", b'{"id": 2}')
        assert (target, body) == ("/orders/2?id=c1&x=1", b'{"id": 2}')

    def test_ids_in_arrays_are_rewritten(self) -> None:
        """A body pattern through an array rewrites every element's id it knows."""
        spec = RouteIdentity(
            family="f", create=("$.ids[*]",), body=("$.lines[*].order_id", "$.all[*]")
        )
        ids = IdentityMap(10)
        ids.learn(spec, _answer(b'{"ids": [1, 2]}'), _answer(b'{"ids": ["a", "b"]}'), 99)
        _, body = ids.rewrite(
            spec, "/", b'{"lines": [{"order_id": 2}, {"order_id": 3}], "all": [1]}'
        )
        assert body == b'{"lines":[{"order_id":"b"},{"order_id":3}],"all":["a"]}'

    def test_the_candidates_ids_map_back_for_legacy(self) -> None:
        """A copy to legacy (candidate mode) gets the candidate's ids turned into legacy's."""
        ids = IdentityMap(10)
        ids.learn(SPEC, _answer(b'{"id": 7}'), _answer(b'{"id": "c7"}'), 99)
        assert ids.rewrite(SPEC, "/orders/c7?id=c7", b"", to_legacy=True)[0] == "/orders/7?id=7"

    def test_pairs_are_bounded_per_family(self) -> None:
        """Past max_pairs the least recently used pair is forgotten and counted."""
        ids = IdentityMap(2)
        for n in (1, 2, 3):
            ids.learn(SPEC, _answer(b'{"id": %d}' % n), _answer(b'{"id": %d}' % (n + 100)), 99)
        assert (ids.pairs("orders"), ids.forgotten) == (2, 1)
        assert ids.rewrite(SPEC, "/orders/1", b"")[0] == "/orders/1"
        assert ids.rewrite(SPEC, "/orders/3", b"")[0] == "/orders/103"
        assert ids.rewrite(SPEC, "/orders/101", b"", to_legacy=True)[0] == "/orders/101"
        assert ids.rewrite(SPEC, "/orders/102", b"", to_legacy=True)[0] == "/orders/2"

    def test_only_successful_answers_teach(self) -> None:
        """A failed create (a 4xx on either side) teaches no pair."""
        ids = IdentityMap(10)
        refused = Observation(422, JSON, b'{"id": 9}', body_size=9)
        assert ids.learn(SPEC, _answer(b'{"id": 1}'), refused, 99) == 0

    def test_equate_keeps_other_differences(self) -> None:
        """Only differences that are a mapped pair go; the verdict's classes follow the rest."""
        ids = IdentityMap(10)
        ids.learn(SPEC, _answer(b'{"id": 1}'), _answer(b'{"id": "c1"}'), 99)
        verdict = Verdict(
            Outcome.DIVERGED,
            frozenset({DiffClass.STRUCTURAL, DiffClass.SEMANTIC}),
            (
                Difference(DiffClass.STRUCTURAL, "type", "$.id", 1, "c1"),
                Difference(DiffClass.SEMANTIC, "value", "$.href", "/o/1", "/o/c1"),
                Difference(DiffClass.SEMANTIC, "value", "$.qty", 1, 2),
            ),
        )
        equated = ids.equate("orders", verdict)
        assert (equated.outcome, equated.classes) == (
            Outcome.DIVERGED,
            frozenset({DiffClass.SEMANTIC}),
        )
        assert [d.path for d in equated.differences] == ["$.qty"]
        assert dict(equated.equivalences) == {MAPPED_ID: 2}


class TestIdentityConfig:
    @pytest.mark.parametrize(
        ("route", "expected"),
        [
            (
                "{match: '/o/{id}', identity: {path: [oid]}}",
                "routes[0].identity.path: 'oid' is not a placeholder of '/o/{id}'\n",
            ),
            (
                "{match: '/o', identity: {family: f}}",
                "routes[0].identity: names no create, path, query or body\n",
            ),
            (
                "{match: '/o', identity: {create: ['id']}}",
                "routes[0].identity.create: JSONPath 'id' must start with '$'\n",
            ),
            ("{match: '/o', identity: {creates: []}}", "routes[0].identity.creates: unknown key\n"),
        ],
    )
    def test_bad_identity_names_the_key(
        self, route: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad identity setting exits 2 with one line naming the key."""
        document = (
            "upstreams: {legacy: 'http://127.0.0.1:1', candidate: 'http://127.0.0.1:2'}\n"
            f"routes: [{route}]\n"
        )
        assert config_error(document, tmp_path, capsys) == expected

    def test_family_defaults_to_the_domain(self, tmp_path: Path) -> None:
        """Without a family, a route's ids belong to its domain."""
        settings = make_settings("http://127.0.0.1:1", "http://127.0.0.1:2", tmp_path, IDS)
        identity = settings.routes[4].identity
        assert identity is not None
        assert (identity.family, identity.path) == ("orders", (2,))
