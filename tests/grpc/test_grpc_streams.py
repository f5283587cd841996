"""Server-streaming calls mirrored and compared message by message within a bounded window."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.grpc.harness import compared, proxied, records
from tests.grpc.shop import Script, ShopCode, shop_server

WATCH = "/shop.v1.Shop/WatchItems"


async def _watch(
    shop: ShopCode,
    tmp_path: Path,
    legacy_script: Script,
    candidate_script: Script,
    **options: Any,
) -> tuple[list[str], dict[str, Any]]:
    """One WatchItems call through the proxy: the ids the client got, and the exchange record."""
    async with shop_server(shop, legacy_script) as legacy:
        async with shop_server(shop, candidate_script) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target, **options
            ) as p:
                call = p.stub.WatchItems(shop.pb2.ListItemsRequest(limit=1), timeout=10.0)
                received = [item.id async for item in call]
                await compared(p, WATCH)
    (record,) = records(tmp_path, WATCH)
    return received, record


def _found(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(d["kind"], d["path"]) for d in record["differences"] if not d["noise"]]


class TestStreamComparison:
    """Each message is compared at its place; the window is the record's ``stream``."""

    async def test_same_stream_matches(self, shop: ShopCode, tmp_path: Path) -> None:
        """The client gets every message; equal streams are a match with both windows recorded."""
        received, record = await _watch(shop, tmp_path, Script(), Script())
        assert received == ["w0", "w1", "w2"]
        assert record["verdict"] == "match"
        stream = record["stream"]
        assert stream["kind"] == "grpc"
        assert (stream["legacy"]["events"], stream["legacy"]["ended"]) == (3, "end")
        assert stream["candidate"]["events"] == 3

    async def test_drift_in_each_message(self, shop: ShopCode, tmp_path: Path) -> None:
        """A field that differs in every message is reported at each message's position."""
        item = {**Script().item, "price": {"cents": 2099, "currency": "EUR"}}
        _, record = await _watch(shop, tmp_path, Script(), Script(item=item))
        assert _found(record) == [("value", f"$[{n}].message.price.cents") for n in range(3)]
        assert record["classes"] == ["semantic"]

    async def test_a_missing_message(self, shop: ShopCode, tmp_path: Path) -> None:
        """A candidate that ends one message early misses the last one."""
        _, record = await _watch(shop, tmp_path, Script(), Script(stream_count=2))
        assert _found(record) == [("event_missing", "$[2].message")]

    async def test_final_status_compared(self, shop: ShopCode, tmp_path: Path) -> None:
        """A stream that ends with another code is a status difference (structural)."""
        import grpc

        legacy = Script(stream_code=grpc.StatusCode.ABORTED, details="gone")
        received: list[str] = []
        async with shop_server(shop, legacy) as old, shop_server(shop, Script()) as new:
            async with proxied(shop, tmp_path, legacy=old.target, candidate=new.target) as p:
                call = p.stub.WatchItems(shop.pb2.ListItemsRequest(limit=1), timeout=10.0)
                try:
                    async for item in call:
                        received.append(item.id)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() is grpc.StatusCode.ABORTED
                await compared(p, WATCH)
        (record,) = records(tmp_path, WATCH)
        assert received == ["w0", "w1", "w2"]
        (status,) = [d for d in record["differences"] if d["kind"] == "status"]
        assert (status["legacy"], status["candidate"]) == ("ABORTED", "OK")

    async def test_window_bounds_the_comparison(self, shop: ShopCode, tmp_path: Path) -> None:
        """max_events 4: legacy's window holds 4 messages; the copy's later ones are not extra."""
        long = Script(stream_count=40)
        section = {"methods": [{"method": WATCH, "stream": {"max_events": 4}}]}
        received, record = await _watch(shop, tmp_path, long, long, grpc_section=section)
        assert len(received) == 40
        assert record["differences"] == []
        legacy, candidate = record["stream"]["legacy"], record["stream"]["candidate"]
        assert (legacy["events"], legacy["ended"]) == (4, "events")
        assert (candidate["events"], candidate["ended"]) == (8, "events")

    async def test_without_descriptors_messages_are_bytes(
        self, shop: ShopCode, tmp_path: Path
    ) -> None:
        """Without descriptors each message is compared as bytes, with the raw note."""
        item = {**Script().item, "name": "lump"}
        section = {"methods": [{"method": WATCH, "cardinality": "unary_stream"}]}
        _, record = await _watch(
            shop, tmp_path, Script(), Script(item=item), descriptors=False, grpc_section=section
        )
        assert _found(record) == [("body", f"$[{n}].binary") for n in range(3)]
        assert record["note"].startswith("raw protobuf bytes compared")


class TestCandidateNeverHurts:
    """A stuck candidate stream costs the client nothing."""

    async def test_hanging_candidate(self, shop: ShopCode, tmp_path: Path) -> None:
        """The client's stream ends while the candidate still hangs; the copy's window times out."""
        release = asyncio.Event()
        window = {"methods": [{"method": WATCH, "stream": {"max_seconds": 1, "grace_s": 0}}]}
        async with shop_server(shop) as legacy, shop_server(shop, Script(hang=release)) as stuck:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=stuck.target, grpc_section=window
            ) as p:
                call = p.stub.WatchItems(shop.pb2.ListItemsRequest(limit=1), timeout=10.0)
                received = [item.id async for item in call]
                # The client is done, and the candidate has not sent a thing.
                assert not release.is_set()
                await compared(p, WATCH)
            release.set()
        (record,) = records(tmp_path, WATCH)
        assert received == ["w0", "w1", "w2"]
        assert record["stream"]["candidate"]["ended"] == "time"
        assert {d["kind"] for d in record["differences"]} == {"event_missing", "first_event"}
