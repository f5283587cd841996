"""Without descriptors: raw message bytes are compared and the verdict says so."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from shadowproxy.grpcproxy.shadow import RAW_NOTE
from tests.grpc.harness import proxied, records, shop_pair
from tests.grpc.shop import Script, ShopCode, shop_server
from tests.support import eventually

GET = "/shop.v1.Shop/GetItem"


class TestRawComparison:
    """Descriptor-less mode compares bytes, statuses and metadata."""

    async def test_equal_bytes_match_with_note(self, shop: ShopCode, tmp_path: Path) -> None:
        """Identical answers match; the record notes that bytes were compared."""
        async with shop_pair(shop, tmp_path, descriptors=False) as (_legacy, _candidate, p):
            item = await p.stub.GetItem(shop.pb2.GetItemRequest(id="1"))
            await eventually(
                lambda: (
                    p.metric(
                        "shadowproxy_comparisons_total",
                        route=GET,
                        domain="default",
                        verdict="match",
                    )
                    == 1
                )
            )
        assert item.id == "1"
        (record,) = records(tmp_path, GET)
        assert record["note"] == RAW_NOTE

    async def test_different_bytes_diverge(self, shop: ShopCode, tmp_path: Path) -> None:
        """Different message bytes are one semantic ``body`` difference at ``$``."""
        drifting = Script(item={**Script().item, "name": "lamp 2"})
        async with shop_server(shop) as legacy, shop_server(shop, drifting) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target, descriptors=False
            ) as p:
                await p.stub.GetItem(shop.pb2.GetItemRequest(id="1"))
                await eventually(
                    lambda: (
                        p.metric(
                            "shadowproxy_divergences_total",
                            route=GET,
                            domain="default",
                            **{"class": "semantic"},
                        )
                        == 1
                    )
                )
        (record,) = records(tmp_path, GET)
        assert [(d["kind"], d["path"]) for d in record["differences"]] == [("body", "$")]
        assert record["note"] == RAW_NOTE

    async def test_unknown_method_is_unary(self, shop: ShopCode, tmp_path: Path) -> None:
        """A method nobody declared is forwarded as unary; legacy's UNIMPLEMENTED comes back."""
        async with shop_pair(shop, tmp_path, descriptors=False) as (_legacy, _candidate, p):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await p.raw("/other.v1.Things/GetThing")(b"\x0a\x01x")
            route = "/other.v1.Things/GetThing"
            await eventually(
                lambda: (
                    p.metric(
                        "shadowproxy_comparisons_total",
                        route=route,
                        domain="default",
                        verdict="match",
                    )
                    == 1
                )
            )
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED

    async def test_configured_cardinality(self, shop: ShopCode, tmp_path: Path) -> None:
        """Without descriptors, ``cardinality: unary_stream`` relays a server stream."""
        watch = {"method": "/shop.v1.Shop/WatchItems", "cardinality": "unary_stream"}
        section = {"methods": [{**watch, "mirror": False}]}
        options = {"descriptors": False, "grpc_section": section}
        async with shop_pair(shop, tmp_path, **options) as (_legacy, candidate, p):
            ids = [item.id async for item in p.stub.WatchItems(shop.pb2.ListItemsRequest())]
        assert ids == ["w0", "w1", "w2"]
        assert candidate.seen == []
