"""The report shows gRPC methods and NATS subjects as routes, in their domains, with gates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import orjson

from shadowproxy.cli import main
from tests.grpc.shop import ShopCode, shop_server
from tests.nats.nats_support import Reply, client, nats_server, responder
from tests.support import eventually, make_settings, running_proxy

GET = "/shop.v1.Shop/GetItem"
REQUEST = "context.update.request"
EVENTS = "context.events.updated"


class TestReport:
    """One proxy, gRPC and NATS, no HTTP: every route reaches the report."""

    async def test_grpc_and_nats_routes_with_gates(self, shop: ShopCode, tmp_path: Path) -> None:
        """The method and both subjects are routes of their domains; each domain is gated."""
        echo = Reply(lambda data: (orjson.dumps({"echo": data.decode()}), None))
        async with nats_server() as server:
            async with shop_server(shop) as old, shop_server(shop) as new:
                async with responder(server.url, "legacy.update", echo):
                    async with responder(server.url, "candidate.update", echo):
                        document: dict[str, Any] = {
                            "evidence": {"sample_matches_percent": 100},
                            "grpc": {
                                "listen": "127.0.0.1:0",
                                "legacy": old.target,
                                "candidate": new.target,
                                "descriptors": str(shop.descriptors),
                                "methods": [{"method": GET, "domain": "shop"}],
                            },
                            "nats": {
                                "server": {"url": server.url},
                                "domain": "context",
                                "requests": [
                                    {
                                        "subject": REQUEST,
                                        "legacy": "legacy.update",
                                        "candidate": "candidate.update",
                                        "mirror": True,
                                    }
                                ],
                                "events": [
                                    {
                                        "subject": EVENTS,
                                        "candidate": "shadow.events",
                                        "correlation": "$.id",
                                    }
                                ],
                            },
                        }
                        settings = make_settings(None, None, tmp_path / "logs", document)
                        async with running_proxy(settings) as proxy:
                            assert proxy.bound.grpc is not None
                            async with grpc.aio.insecure_channel(str(proxy.bound.grpc)) as ch:
                                stub = shop.pb2_grpc.ShopStub(ch)
                                await stub.GetItem(shop.pb2.GetItemRequest(id="1"), timeout=10)
                            async with client(server.url) as nc:
                                await nc.request(REQUEST, b"hi", timeout=10)
                                await nc.publish(EVENTS, b'{"id": "e1", "n": 1}')
                                await nc.publish("shadow.events", b'{"id": "e1", "n": 2}')
                                await nc.flush()

                            def compared(route: str, domain: str) -> float:
                                return sum(
                                    proxy.metric(
                                        "shadowproxy_comparisons_total",
                                        route=route,
                                        domain=domain,
                                        verdict=verdict,
                                    )
                                    for verdict in ("match", "diverged")
                                )

                            await eventually(
                                lambda: (
                                    compared(GET, "shop") == 1
                                    and compared(REQUEST, "context") == 1
                                    and compared(EVENTS, "context") == 1
                                )
                            )
        out = tmp_path / "report.json"
        main(["report", str(tmp_path / "logs"), "--format", "json", "--out", str(out)])
        report = json.loads(out.read_text())
        routes = {(r["route"], r["domain"]): r for r in report["routes"]}
        assert {(GET, "shop"), (REQUEST, "context"), (EVENTS, "context")} <= set(routes)
        assert routes[(REQUEST, "context")]["match"] == 1
        assert routes[(EVENTS, "context")]["semantic"] == 1
        gated = {gate["domain"] for gate in report["gates"]}
        assert {"shop", "context"} <= gated
        assert {d["domain"] for d in report["domains"]} >= {"shop", "context"}
