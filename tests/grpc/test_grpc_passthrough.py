"""The gRPC hot path: the client gets legacy's answer unchanged, for every cardinality."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from tests.grpc.harness import proxied, shop_pair
from tests.grpc.shop import Script, ShopCode, shop_server
from tests.support import eventually

GET = "/shop.v1.Shop/GetItem"
SLACK = 1.02


async def _error(awaitable: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable  # type: ignore[misc]
    return caught.value


class TestUnaryPassThrough:
    """Messages, status, details and both metadata blocks reach the client as legacy sent them."""

    async def test_message_and_metadata(self, shop: ShopCode, tmp_path: Path) -> None:
        """The response bytes, initial metadata and trailing metadata (binary too) pass through."""
        script = Script(initial=(("x-legacy", "yes"),), trailing=(("x-trace-bin", b"\x00\xff"),))
        async with shop_server(shop, script) as legacy, shop_server(shop) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target
            ) as p:
                call = p.stub.GetItem(
                    shop.pb2.GetItemRequest(id="42"), metadata=(("x-tenant", "acme"),)
                )
                item = await call
                initial = tuple(await call.initial_metadata())
                trailing = tuple(await call.trailing_metadata())
        assert item == shop.pb2.Item(**{**Script().item, "id": "42"})
        assert ("x-legacy", "yes") in initial
        assert ("x-trace-bin", b"\x00\xff") in trailing
        assert ("x-tenant", "acme") in legacy.seen[0].metadata

    async def test_error_status_details_and_trailers(self, shop: ShopCode, tmp_path: Path) -> None:
        """A legacy error reaches the client with its code, details and trailing metadata."""
        script = Script(
            code=grpc.StatusCode.NOT_FOUND, details="no item 7", trailing=(("x-why", "gone"),)
        )
        async with shop_server(shop, script) as legacy, shop_server(shop) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target
            ) as p:
                error = await _error(p.stub.GetItem(shop.pb2.GetItemRequest(id="7")))
                await eventually(
                    lambda: (
                        p.metric(
                            "shadowproxy_requests_total", route=GET, method="POST", code_class="4xx"
                        )
                        == 1
                    )
                )
        assert error.code() is grpc.StatusCode.NOT_FOUND
        assert error.details() == "no item 7"
        assert ("x-why", "gone") in tuple(error.trailing_metadata() or ())

    async def test_deadline_propagates(self, shop: ShopCode, tmp_path: Path) -> None:
        """Legacy sees the client's remaining deadline, never more."""
        async with shop_pair(shop, tmp_path) as (legacy, _candidate, p):
            await p.stub.GetItem(shop.pb2.GetItemRequest(id="1"), timeout=5.0)
            await p.stub.GetItem(shop.pb2.GetItemRequest(id="2"))
        with_deadline, without = legacy.seen
        # grpc-timeout travels in coarse units rounded up, hence the small slack.
        assert with_deadline.time_remaining is not None
        assert 0 < with_deadline.time_remaining <= 5.0 * SLACK
        # Without a client deadline a unary call is bounded by grpc.timeout_s (30 s).
        assert without.time_remaining is not None
        assert 5.0 * SLACK < without.time_remaining <= 30.0 * SLACK

    async def test_expired_deadline_answers_deadline_exceeded(
        self, shop: ShopCode, tmp_path: Path
    ) -> None:
        """A hanging legacy gives the client DEADLINE_EXCEEDED at its own deadline."""
        script = Script(hang=asyncio.Event())
        async with shop_server(shop, script) as legacy, shop_server(shop) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target
            ) as p:
                error = await _error(p.stub.GetItem(shop.pb2.GetItemRequest(id="1"), timeout=0.3))
        assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED

    async def test_legacy_down(self, shop: ShopCode, tmp_path: Path) -> None:
        """An unreachable legacy is UNAVAILABLE for the client, named in the details."""
        async with shop_server(shop) as gone:
            target = gone.target
        async with shop_server(shop) as candidate:
            async with proxied(shop, tmp_path, legacy=target, candidate=candidate.target) as p:
                error = await _error(p.stub.GetItem(shop.pb2.GetItemRequest(id="1")))
                await eventually(
                    lambda: (
                        p.metric("shadowproxy_shadow_skipped_total", reason="legacy_failed") == 1
                    )
                )
                refused = p.metric(
                    "shadowproxy_upstream_errors_total", upstream="legacy", reason="refused"
                )
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert error.details() == "shadowproxy: legacy refused"
        assert refused == 1


class TestEveryCallCounted:
    """A legacy that hangs past the client's deadline is a counted legacy timeout, every time."""

    async def test_six_calls_past_the_deadline(self, shop: ShopCode, tmp_path: Path) -> None:
        """Six calls in a row: six legacy timeouts, six 5xx requests, six latencies."""
        script = Script(hang=asyncio.Event())
        async with shop_server(shop, script) as legacy, shop_server(shop) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target
            ) as p:
                for n in range(6):
                    error = await _error(
                        p.stub.GetItem(shop.pb2.GetItemRequest(id=str(n)), timeout=0.3)
                    )
                    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
                await eventually(
                    lambda: (
                        p.metric(
                            "shadowproxy_requests_total", route=GET, method="POST", code_class="5xx"
                        )
                        == 6
                    )
                )
                timeouts = p.metric(
                    "shadowproxy_upstream_errors_total", upstream="legacy", reason="timeout"
                )
                latencies = p.metric(
                    "shadowproxy_upstream_latency_seconds_count", upstream="legacy", route=GET
                )
                # Each latency is the time legacy had: the client's deadline, not less.
                total_s = p.metric(
                    "shadowproxy_upstream_latency_seconds_sum", upstream="legacy", route=GET
                )
        assert (timeouts, latencies) == (6, 6)
        assert total_s >= 6 * 0.3 * 0.9

    async def test_stream_past_the_deadline(self, shop: ShopCode, tmp_path: Path) -> None:
        """A server-streaming call whose legacy hangs past the deadline is counted the same way."""
        script = Script(hang=asyncio.Event())
        async with shop_server(shop, script) as legacy, shop_server(shop) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target
            ) as p:
                for _ in range(2):
                    call = p.stub.WatchItems(shop.pb2.ListItemsRequest(limit=1), timeout=0.3)
                    error = await _error(call.read())
                    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
                watch = "/shop.v1.Shop/WatchItems"
                await eventually(
                    lambda: (
                        p.metric(
                            "shadowproxy_requests_total",
                            route=watch,
                            method="POST",
                            code_class="5xx",
                        )
                        == 2
                    )
                )
                timeouts = p.metric(
                    "shadowproxy_upstream_errors_total", upstream="legacy", reason="timeout"
                )
        assert timeouts == 2

    async def test_client_cancel_is_not_a_legacy_failure(
        self, shop: ShopCode, tmp_path: Path
    ) -> None:
        """A client that cancels before its deadline counts as CANCELLED (499), not a timeout."""
        script = Script(hang=asyncio.Event())
        async with shop_server(shop, script) as legacy, shop_server(shop) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target
            ) as p:
                call = p.stub.GetItem(shop.pb2.GetItemRequest(id="1"), timeout=30)
                await legacy.wait_calls(1)
                call.cancel()
                await eventually(
                    lambda: (
                        p.metric(
                            "shadowproxy_requests_total", route=GET, method="POST", code_class="4xx"
                        )
                        == 1
                    )
                )
                timeouts = p.metric(
                    "shadowproxy_upstream_errors_total", upstream="legacy", reason="timeout"
                )
        assert timeouts == 0


class TestStreamsPassThrough:
    """Streaming calls relay legacy's messages and final status (mirroring: test_grpc_streams)."""

    async def test_server_streaming(self, shop: ShopCode, tmp_path: Path) -> None:
        """Every streamed message arrives in order, then legacy's error status and trailers."""
        script = Script(
            stream_count=3,
            stream_code=grpc.StatusCode.ABORTED,
            details="stream ended",
            trailing=(("x-last", "3"),),
        )
        off = {"methods": [{"method": "/shop.v1.Shop/WatchItems", "mirror": False}]}
        async with shop_server(shop, script) as legacy, shop_server(shop) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target, grpc_section=off
            ) as p:
                call = p.stub.WatchItems(shop.pb2.ListItemsRequest(limit=3), timeout=5.0)
                received = []
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    async for item in call:
                        received.append(item.id)
                skipped = p.metric("shadowproxy_shadow_skipped_total", reason="method")
        assert received == ["w0", "w1", "w2"]
        assert caught.value.code() is grpc.StatusCode.ABORTED
        assert caught.value.details() == "stream ended"
        assert ("x-last", "3") in tuple(caught.value.trailing_metadata() or ())
        assert 0 < legacy.seen[0].time_remaining <= 5.0 * SLACK  # type: ignore[operator]
        assert skipped == 1
        assert candidate.seen == []

    async def test_client_streaming_and_bidi(self, shop: ShopCode, tmp_path: Path) -> None:
        """Client-streaming and bidirectional calls pass through and count as skipped."""

        async def items() -> object:
            for n in range(3):
                yield shop.pb2.Item(id=str(n), name=f"item{n}")

        async with shop_pair(shop, tmp_path) as (_legacy, candidate, p):
            uploaded = await p.stub.UploadItems(items())
            echoed = [item.name async for item in p.stub.Chat(items())]
            skipped = p.metric("shadowproxy_shadow_skipped_total", reason="upgrade")
        assert [item.id for item in uploaded.items] == ["0", "1", "2"]
        assert echoed == ["ITEM0", "ITEM1", "ITEM2"]
        assert skipped == 2
        assert candidate.seen == []


class TestConnectionBound:
    """``max_client_connections`` bounds the gRPC listener's client connections too."""

    async def test_one_more_connection_is_closed(self, shop: ShopCode, tmp_path: Path) -> None:
        """With a bound of 1, a second client connection is refused; the first keeps working."""
        bound = {"max_client_connections": 1}
        async with shop_pair(shop, tmp_path, document=bound) as (legacy, _candidate, p):
            first = await p.stub.GetItem(shop.pb2.GetItemRequest(id="1"))
            # A channel of its own: channels to one target otherwise share a connection.
            own = [("grpc.use_local_subchannel_pool", 1)]
            target = str(p.proxy.bound.grpc)
            async with grpc.aio.insecure_channel(target, options=own) as other:
                refused = await _error(
                    shop.pb2_grpc.ShopStub(other).GetItem(
                        shop.pb2.GetItemRequest(id="2"), timeout=10
                    )
                )
            again = await p.stub.GetItem(shop.pb2.GetItemRequest(id="3"))
        assert (first.id, again.id) == ("1", "3")
        assert refused.code() is grpc.StatusCode.UNAVAILABLE
        assert [call.method for call in legacy.seen] == ["GetItem", "GetItem"]
