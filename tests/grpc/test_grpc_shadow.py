"""Mirrored gRPC calls: compared by the shared core, classified, recorded, never felt by clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import jsonschema

from tests.grpc.harness import GET, compared, one_exchange, proxied, records, shop_pair
from tests.grpc.shop import Script, ShopCode, shop_server
from tests.support import ADMIN_AUTH, WAIT_S

LIST = "/shop.v1.Shop/ListItems"
DELETE = "/shop.v1.Shop/DeleteItem"


def _conforms(record: dict[str, Any]) -> None:
    """Fail unless ``record`` conforms to the shipped exchange schema."""
    text = resources.files("shadowproxy").joinpath("schemas", "exchange.schema.json").read_text()
    jsonschema.Draft202012Validator(json.loads(text)).validate(record)


def _differences(record: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(d["class"], d["kind"], d["path"]) for d in record["differences"] if not d["noise"]]


class TestClassification:
    """Differences between legacy and candidate answers get the usual classes and paths."""

    async def test_identical_answers_match(self, shop: ShopCode, tmp_path: Path) -> None:
        """Equal messages are a match, recorded with the method as route and 200 for OK."""
        record = await one_exchange(shop, tmp_path, Script(), Script())
        assert record["verdict"] == "match"
        assert record["route"] == GET
        assert record["path"] == GET
        assert record["method"] == "POST"
        assert record["legacy"]["status"] == 200
        assert record["note"] is None
        _conforms(record)

    async def test_status_change_is_structural(self, shop: ShopCode, tmp_path: Path) -> None:
        """A candidate error where legacy answered is a structural status difference by name."""
        candidate = Script(code=grpc.StatusCode.INTERNAL, details="boom")
        record = await one_exchange(shop, tmp_path, Script(), candidate)
        assert record["verdict"] == "diverged"
        status = next(d for d in record["differences"] if d["path"] == "status")
        assert (status["class"], status["legacy"], status["candidate"]) == (
            "structural",
            "OK",
            "INTERNAL",
        )
        assert record["candidate"]["status"] == 213
        _conforms(record)

    async def test_error_codescompared(self, shop: ShopCode, tmp_path: Path) -> None:
        """Two different error codes (same HTTP mapping) are still a status difference."""
        legacy = Script(code=grpc.StatusCode.UNKNOWN)
        candidate = Script(code=grpc.StatusCode.DATA_LOSS)
        record = await one_exchange(shop, tmp_path, legacy, candidate)
        assert _differences(record) == [("structural", "status", "status")]

    async def test_added_field_is_structural(self, shop: ShopCode, tmp_path: Path) -> None:
        """A field the descriptors do not know appears as an extra ``#<number>`` key."""
        record = await one_exchange(shop, tmp_path, Script(), Script(new_field=True))
        assert _differences(record) == [("structural", "extra", "$['#6']")]

    async def test_removed_field_is_structural(self, shop: ShopCode, tmp_path: Path) -> None:
        """A field with presence that the candidate leaves out is a missing field."""
        item = {k: v for k, v in Script().item.items() if k != "note"}
        record = await one_exchange(shop, tmp_path, Script(), Script(item=item))
        assert _differences(record) == [("structural", "missing", "$.note")]

    async def test_value_drift_is_semantic(self, shop: ShopCode, tmp_path: Path) -> None:
        """A changed nested value is semantic, with its JSONPath and both values."""
        item = {**Script().item, "price": {"cents": 2099, "currency": "EUR"}}
        record = await one_exchange(shop, tmp_path, Script(), Script(item=item))
        assert _differences(record) == [("semantic", "value", "$.price.cents")]
        (difference,) = record["differences"]
        assert (difference["legacy"], difference["candidate"]) == (1999, 2099)

    async def test_array_paths(self, shop: ShopCode, tmp_path: Path) -> None:
        """Repeated fields get indexed paths like ``$.items[2].price.currency``."""
        legacy_script = Script()
        candidate_script = Script(item={**Script().item, "price": {"cents": 1999}})
        async with shop_server(shop, legacy_script) as legacy:
            async with shop_server(shop, candidate_script) as candidate:
                async with proxied(
                    shop, tmp_path, legacy=legacy.target, candidate=candidate.target
                ) as p:
                    await p.stub.ListItems(shop.pb2.ListItemsRequest(limit=3))
                    await compared(p, LIST)
        (record,) = records(tmp_path, LIST)
        paths = [d["path"] for d in record["differences"]]
        assert paths == [f"$.items[{n}].price.currency" for n in range(3)]

    async def test_metadata_compared_only_when_listed(self, shop: ShopCode, tmp_path: Path) -> None:
        """Listed metadata keys are compared like headers; reserved and volatile ones never."""
        legacy = Script(initial=(("x-api-version", "1"), ("date", "a")))
        candidate = Script(initial=(("x-api-version", "2"), ("date", "b")))
        document = {"compare": {"headers": ["x-api-version", "date", "user-agent"]}}
        record = await one_exchange(shop, tmp_path, legacy, candidate, document=document)
        assert _differences(record) == [("semantic", "header", "x-api-version")]

    async def test_request_id_and_metadata_secrets(self, shop: ShopCode, tmp_path: Path) -> None:
        """x-request-id is recorded apart, never as the id; metadata secrets are scrubbed."""
        token = "CNRYgrpctok42"
        legacy = Script(initial=(("x-echo", "legacy"),))
        candidate = Script(initial=(("x-echo", f"candidate saw {token}"),))
        document = {"compare": {"headers": ["x-echo"]}}
        metadata = (("x-request-id", "grpc-client-1"), ("authorization", f"Bearer {token}"))
        async with shop_server(shop, legacy) as old, shop_server(shop, candidate) as new:
            async with proxied(
                shop, tmp_path, legacy=old.target, candidate=new.target, document=document
            ) as p:
                for _ in range(2):
                    await p.stub.GetItem(
                        shop.pb2.GetItemRequest(id="9"), metadata=metadata, timeout=5.0
                    )
                await compared(p, GET, 2)
            assert ("x-request-id", "grpc-client-1") in old.seen[0].metadata
        first, second = records(tmp_path, GET)
        _conforms(first)
        assert first["id"] != second["id"] and "grpc-client-1" not in (first["id"], second["id"])
        assert first["client_request_id"] == second["client_request_id"] == "grpc-client-1"
        (echo,) = first["differences"]
        assert echo["candidate"] == "candidate saw [REDACTED]"
        evidence = b"".join(f.read_bytes() for f in (tmp_path / "logs").iterdir())
        assert token.encode() not in evidence

    async def test_domain_from_config(self, shop: ShopCode, tmp_path: Path) -> None:
        """A configured method carries its domain into the evidence."""
        section = {"methods": [{"method": GET, "domain": "shop"}]}
        record = await one_exchange(shop, tmp_path, Script(), Script(), grpc_section=section)
        assert record["domain"] == "shop"


class TestMirrorPolicy:
    """What is mirrored: read-only unary methods, others only when configured."""

    async def test_mutating_method_not_mirrored(self, shop: ShopCode, tmp_path: Path) -> None:
        """DeleteItem reaches legacy only and counts as skipped ``method``."""
        async with shop_pair(shop, tmp_path) as (legacy, candidate, p):
            await p.stub.DeleteItem(shop.pb2.GetItemRequest(id="1"))
            skipped = p.metric("shadowproxy_shadow_skipped_total", reason="method")
        assert len(legacy.seen) == 1
        assert candidate.seen == []
        assert skipped == 1

    async def test_mutating_method_mirrored_when_configured(
        self, shop: ShopCode, tmp_path: Path
    ) -> None:
        """``mirror: true`` mirrors a write, marked with ``x-shadow-request``."""
        section = {"methods": [{"method": DELETE, "mirror": True}]}
        async with shop_pair(shop, tmp_path, grpc_section=section) as (legacy, candidate, p):
            await p.stub.DeleteItem(shop.pb2.GetItemRequest(id="1"))
            await compared(p, DELETE)
        assert ("x-shadow-request", "1") in candidate.seen[0].metadata
        assert ("x-shadow-request", "1") not in legacy.seen[0].metadata

    async def test_kill_switch(self, shop: ShopCode, tmp_path: Path) -> None:
        """While paused through the admin API nothing is mirrored (skip ``paused``)."""
        import aiohttp

        async with shop_pair(shop, tmp_path) as (_legacy, candidate, p):
            async with aiohttp.ClientSession() as session:
                pause = f"{p.proxy.admin}/shadow/pause"
                async with session.post(pause, headers=ADMIN_AUTH) as response:
                    assert response.status == 200
            await p.stub.GetItem(shop.pb2.GetItemRequest(id="1"))
            paused = p.metric("shadowproxy_shadow_skipped_total", reason="paused")
        assert paused == 1
        assert candidate.seen == []


class TestCandidateNeverHurts:
    """A hanging or failing candidate never changes what the client gets, or when."""

    async def test_hanging_candidate(self, shop: ShopCode, tmp_path: Path) -> None:
        """The client is answered while the candidate hangs; the shadow times out as an error."""
        release = asyncio.Event()
        async with (
            shop_server(shop) as legacy,
            shop_server(shop, Script(hang=release)) as candidate,
        ):
            async with proxied(
                shop,
                tmp_path,
                legacy=legacy.target,
                candidate=candidate.target,
                document={"shadow": {"timeout_s": 0.5, "grace_s": 0.5}},
            ) as p:
                item = await p.stub.GetItem(shop.pb2.GetItemRequest(id="3"), timeout=5.0)
                answered_while_hanging = not release.is_set() and len(candidate.seen) <= 1
                await compared(p, GET)
                timeouts = p.metric(
                    "shadowproxy_upstream_errors_total", upstream="candidate", reason="timeout"
                )
        assert item.id == "3"
        assert answered_while_hanging
        assert timeouts == 1
        (record,) = records(tmp_path, GET)
        assert (record["verdict"], record["candidate"]["error"]) == ("error", "timeout")

    async def test_unreachable_candidate(self, shop: ShopCode, tmp_path: Path) -> None:
        """A candidate that refuses connections is an error verdict; the client is unaffected."""
        async with shop_server(shop) as gone:
            target = gone.target
        async with shop_server(shop) as legacy:
            async with proxied(shop, tmp_path, legacy=legacy.target, candidate=target) as p:
                item = await p.stub.GetItem(shop.pb2.GetItemRequest(id="4"))
                await compared(p, GET)
        assert item.id == "4"
        (record,) = records(tmp_path, GET)
        assert (record["verdict"], record["candidate"]["error"]) == ("error", "refused")

    async def test_failing_candidate(self, shop: ShopCode, tmp_path: Path) -> None:
        """A candidate answering UNAVAILABLE itself is a status difference, not a client error."""
        failing = Script(code=grpc.StatusCode.UNAVAILABLE, details="overloaded")
        async with shop_server(shop) as legacy, shop_server(shop, failing) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target
            ) as p:
                item = await p.stub.GetItem(shop.pb2.GetItemRequest(id="5"))
                await compared(p, GET)
        assert item.id == "5"
        (record,) = records(tmp_path, GET)
        assert record["verdict"] == "diverged"
        assert record["candidate"]["status"] == 214


class TestSecondary:
    """A secondary legacy instance turns its own differences into noise."""

    async def test_noise_from_secondary(self, shop: ShopCode, tmp_path: Path) -> None:
        """A value legacy and secondary disagree on is noise, not a divergence."""
        drifting = Script(item={**Script().item, "name": "lamp 2"})
        async with shop_server(shop) as legacy, shop_server(shop, drifting) as candidate:
            async with shop_server(shop, drifting) as secondary:
                async with proxied(
                    shop,
                    tmp_path,
                    legacy=legacy.target,
                    candidate=candidate.target,
                    secondary=secondary.target,
                ) as p:
                    await p.stub.GetItem(shop.pb2.GetItemRequest(id="1"))
                    await compared(p, GET)
        (record,) = records(tmp_path, GET)
        assert record["verdict"] == "noise"
        assert record["secondary"]["status"] == 200


class TestReload:
    """SIGHUP swaps the gRPC methods' policy without a restart."""

    async def test_sighup_changes_mirror_policy(self, shop: ShopCode, tmp_path: Path) -> None:
        """After a reload marking GetItem ``mirror: false`` it is no longer mirrored."""
        reloaded = {"methods": [{"method": GET, "mirror": False}]}
        async with shop_pair(shop, tmp_path, reloaded=reloaded) as (_legacy, candidate, p):
            await p.stub.GetItem(shop.pb2.GetItemRequest(id="1"))
            await compared(p, GET)
            os.kill(os.getpid(), signal.SIGHUP)

            async def skipped() -> bool:
                await p.stub.GetItem(shop.pb2.GetItemRequest(id="2"))
                return p.metric("shadowproxy_shadow_skipped_total", reason="method") > 0

            async with asyncio.timeout(WAIT_S):
                while not await skipped():
                    pass
            before = p.metric("shadowproxy_shadow_skipped_total", reason="method")
            await p.stub.GetItem(shop.pb2.GetItemRequest(id="3"))
            after = p.metric("shadowproxy_shadow_skipped_total", reason="method")
        assert after == before + 1
        assert candidate.seen
