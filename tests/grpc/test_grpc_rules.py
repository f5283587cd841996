"""The comparison rules a gRPC migration needs: maps, added fields, whitespace, JSON in strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.grpc.harness import GET, compared, one_exchange, proxied, records
from tests.grpc.shop import Script, ShopCode, raw_server

LABELS = [("tier", "gold"), ("region", "eu"), ("lane", "b")]


def _rules(**compare: list[str]) -> dict[str, Any]:
    return {"methods": [{"method": GET, "compare": compare}]}


def _with_labels(shop: ShopCode, labels: list[tuple[str, str]]) -> bytes:
    """An item whose map entries are on the wire in exactly this order."""
    entries = b"".join(shop.pb2.Item(labels={k: v}).SerializeToString() for k, v in labels)
    return shop.pb2.Item(id="1", name="lamp").SerializeToString() + entries


async def _map_exchange(shop: ShopCode, tmp_path: Path, *, descriptors: bool) -> dict[str, Any]:
    """One GetItem whose legacy and candidate send the same map in opposite wire orders."""
    forward, backward = _with_labels(shop, LABELS), _with_labels(shop, LABELS[::-1])
    assert forward != backward
    async with raw_server({GET: forward}) as legacy, raw_server({GET: backward}) as candidate:
        async with proxied(
            shop, tmp_path, legacy=legacy, candidate=candidate, descriptors=descriptors
        ) as p:
            await p.stub.GetItem(shop.pb2.GetItemRequest(id="1"), timeout=5.0)
            await compared(p, GET)
    (record,) = records(tmp_path, GET)
    return record


class TestMessageRules:
    """Each rule takes effect on the decoded message, at the listed fields only."""

    async def test_map_field_in_another_wire_order_matches(
        self, shop: ShopCode, tmp_path: Path
    ) -> None:
        """A map field written in another order (another runtime) is the same map."""
        record = await _map_exchange(shop, tmp_path, descriptors=True)
        assert record["verdict"] == "match"

    async def test_map_field_without_descriptors_is_bytes(
        self, shop: ShopCode, tmp_path: Path
    ) -> None:
        """Without descriptors the same map in another order is a byte difference."""
        record = await _map_exchange(shop, tmp_path, descriptors=False)
        assert [d["kind"] for d in record["differences"]] == ["body"]

    async def test_listed_added_field_is_a_compatible_change(
        self, shop: ShopCode, tmp_path: Path
    ) -> None:
        """A field the candidate adds, listed in added_fields, is counted, not structural."""
        section = _rules(added_fields=["$['#6']"])
        record = await one_exchange(
            shop, tmp_path, Script(), Script(new_field=True), grpc_section=section
        )
        assert (record["verdict"], record["classes"]) == ("match", [])
        assert record["equivalences"] == {"added_field": 1}

    async def test_whitespace_and_json_in_strings(self, shop: ShopCode, tmp_path: Path) -> None:
        """Whitespace in a listed text field and JSON spelled otherwise in another are equal."""
        legacy = Script(item={**Script().item, "name": '{"a": 1, "b": [2]}', "note": "bright  "})
        candidate = Script(item={**Script().item, "name": '{"b":[2],"a":1}', "note": " bright"})
        section = _rules(whitespace=["$.note"], json_strings=["$.name"])
        record = await one_exchange(shop, tmp_path, legacy, candidate, grpc_section=section)
        assert record["verdict"] == "match"
        assert record["equivalences"] == {"json_string": 1, "whitespace": 1}
        unruled = await one_exchange(shop, tmp_path / "unruled", legacy, candidate)
        assert [d["path"] for d in unruled["differences"]] == ["$.name", "$.note"]
