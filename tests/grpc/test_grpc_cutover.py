"""gRPC methods take the cutover modes HTTP routes take: the same core, state, records."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import grpc
import pytest

from shadowproxy.cutover.canary import in_canary
from tests.grpc.harness import (
    GET,
    answered_by,
    compared,
    cutover,
    methods,
    pair,
    proxied,
    side,
)
from tests.grpc.shop import Script, ShopCode, shop_server
from tests.support import ADMIN_AUTH, config_error, eventually, held_port, records

DELETE = "/shop.v1.Shop/DeleteItem"


class TestModes:
    """Each mode picks who answers and who is mirrored, as for HTTP routes."""

    async def test_candidate_mode_with_reverse_shadow(self, shop: ShopCode, tmp_path: Path) -> None:
        """The candidate answers; legacy gets the copy; the record says who answered."""
        section = methods({"method": GET, "domain": "shop", "mode": "candidate"})
        async with pair(shop, tmp_path, section) as (legacy, _candidate, p):
            assert await answered_by(p, shop) == "candidate"
            await legacy.wait_calls(1)
            await compared(p, GET)
        assert all(key != "x-shadow-probe" for key, _ in legacy.seen[0].metadata)
        (record,) = records(tmp_path, GET)
        assert (record["answered_by"], record["mode"], record["verdict"]) == (
            "candidate",
            "candidate",
            "match",
        )

    async def test_legacy_only_mirrors_nothing(self, shop: ShopCode, tmp_path: Path) -> None:
        """Legacy answers and nothing is mirrored (skip reason mode)."""
        section = methods({"method": GET, "mode": "legacy-only"})
        async with pair(shop, tmp_path, section) as (_legacy, candidate, p):
            assert await answered_by(p, shop) == "legacy"
            await eventually(
                lambda: p.metric("shadowproxy_shadow_skipped_total", reason="mode") == 1
            )
        assert candidate.seen == []

    async def test_canary_sticky_by_metadata(self, shop: ShopCode, tmp_path: Path) -> None:
        """At 50 %, each tenant stays on its side, the side the sticky hash gives it."""
        section = methods(
            {"method": GET, "mode": "canary", "canary_percent": 50, "sticky": "metadata:x-tenant"}
        )
        tenants = [f"tenant-{n}" for n in range(16)]
        async with pair(shop, tmp_path, section) as (_legacy, _candidate, p):
            sides = {
                t: {await answered_by(p, shop, **{"x-tenant": t}) for _ in range(2)}
                for t in tenants
            }
        expected = {
            t: {"candidate" if in_canary(f"metadata:{t}", 50) else "legacy"} for t in tenants
        }
        assert sides == expected
        assert {"legacy"} in sides.values() and {"candidate"} in sides.values()

    async def test_force_legacy(self, shop: ShopCode, tmp_path: Path) -> None:
        """Force-legacy through the admin API: a candidate-mode method is answered by legacy."""
        section = methods({"method": GET, "mode": "candidate"})
        async with pair(shop, tmp_path, section) as (_legacy, _candidate, p):
            assert await answered_by(p, shop) == "candidate"
            async with aiohttp.ClientSession() as session:
                forced = p.proxy.admin + "/cutover/force-legacy"
                async with session.post(forced, headers=ADMIN_AUTH) as response:
                    assert response.status == 200
            assert await answered_by(p, shop) == "legacy"
            listing = await cutover(p)
        assert listing["routes"][GET]["effective"] == "force-legacy"

    async def test_service_route(self, shop: ShopCode, tmp_path: Path) -> None:
        """A service route: every method of it takes its mode, and files evidence under it."""
        service = "/shop.v1.Shop/*"
        section = methods({"method": service, "domain": "shop", "mode": "candidate"})
        async with pair(shop, tmp_path, section) as (legacy, _candidate, p):
            assert await answered_by(p, shop) == "candidate"
            await legacy.wait_calls(1)
            await compared(p, service)
            listing = await cutover(p)
        assert listing["routes"][service]["mode"] == "candidate"
        assert records(tmp_path, service)[0]["path"] == GET


class TestRollback:
    """A candidate answering errors is rolled back to shadow by itself."""

    @pytest.mark.parametrize(
        "code",
        [
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.INTERNAL,
            grpc.StatusCode.UNKNOWN,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        ],
    )
    async def test_error_codes_roll_back(
        self, shop: ShopCode, tmp_path: Path, code: grpc.StatusCode
    ) -> None:
        """Five calls answered with the code: the method returns to shadow, recorded."""
        section = methods({"method": GET, "mode": "candidate"})
        rollback = {"cutover": {"rollback": {"min_samples": 5, "window_s": 60}}}
        failing = Script(code=code, details="boom", initial=(("x-side", "candidate"),))
        async with pair(shop, tmp_path, section, rollback, candidate=failing) as (_, _c, p):
            for _ in range(5):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await p.stub.GetItem(shop.pb2.GetItemRequest(id="1"), timeout=10)
                assert caught.value.code() is code
            await eventually(
                lambda: p.metric("shadowproxy_rollbacks_total", route=GET, reason="errors") == 1
            )
            listing = await cutover(p)
            after = await answered_by(p, shop)
        assert (listing["routes"][GET]["mode"], listing["routes"][GET]["source"]) == (
            "shadow",
            "rollback",
        )
        assert after == "legacy"


class TestFallback:
    """A read the candidate cannot answer at all is answered by legacy; a write is not."""

    async def test_read_falls_back_write_does_not(self, shop: ShopCode, tmp_path: Path) -> None:
        """GetItem with the candidate down: legacy answers (counted); DeleteItem fails."""
        with held_port() as sock:
            gone = f"127.0.0.1:{sock.getsockname()[1]}"
            section = methods(
                {"method": GET, "mode": "candidate"}, {"method": DELETE, "mode": "candidate"}
            )
            async with shop_server(shop, side("legacy")) as legacy:
                async with proxied(
                    shop, tmp_path, legacy=legacy.target, candidate=gone, grpc_section=section
                ) as p:
                    read = await p.stub.GetItem(shop.pb2.GetItemRequest(id="1"), timeout=10)
                    with pytest.raises(grpc.aio.AioRpcError) as write:
                        await p.stub.DeleteItem(shop.pb2.GetItemRequest(id="2"), timeout=10)
                    fallbacks = p.metric("shadowproxy_fallback_total", route=GET)
                    # The read's mirror copy and its fallback: a read may reach legacy twice.
                    await legacy.wait_calls(2)
        assert read.id == "1"
        assert fallbacks == 1
        assert write.value.code() is grpc.StatusCode.UNAVAILABLE
        assert write.value.details() == "shadowproxy: candidate refused"
        assert [call.method for call in legacy.seen] == ["GetItem", "GetItem"]


class TestState:
    """A gRPC method's runtime mode is kept in the state file, as a route's is."""

    async def test_mode_survives_a_restart(self, shop: ShopCode, tmp_path: Path) -> None:
        """Set to candidate through the admin API, the method is still candidate after a restart."""
        section = methods({"method": GET})
        async with pair(shop, tmp_path, section) as (_legacy, _candidate, p):
            assert await answered_by(p, shop) == "legacy"
            await cutover(p, "POST", {"route": GET, "mode": "candidate"})
            assert await answered_by(p, shop) == "candidate"
        async with pair(shop, tmp_path, section) as (_legacy, _candidate, p):
            after = await answered_by(p, shop)
            listing = await cutover(p)
        assert after == "candidate"
        assert listing["routes"][GET]["source"] == "api"


class TestConfiguration:
    """The cutover keys of a method are checked as a route's are, one line each."""

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            (
                "{method: /a.B/C, mode: canary}",
                "grpc.methods[0].canary_percent: a canary needs canary_percent > 0",
            ),
            ("{method: /a.B/C, mode: blue}", "grpc.methods[0].mode: must be one of"),
            (
                "{method: /a.B/C, sticky: 'header:x'}",
                "grpc.methods[0].sticky: must be client or metadata:NAME",
            ),
            ("{method: '/a.B/C*'}", "grpc.methods[0].method: must be /package.Service/Method"),
        ],
    )
    def test_errors(
        self,
        entry: str,
        message: str,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Each mistake exits 2 with one line naming the key."""
        document = (
            f"grpc: {{listen: '127.0.0.1:1', legacy: a:1, candidate: b:1, methods: [{entry}]}}\n"
        )
        assert config_error(document, tmp_path, capsys).startswith(message)

    def test_name_shared_with_an_http_route(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A method named as an HTTP route is refused: cutover would mix them up."""
        document = (
            "upstreams: {legacy: 'http://a:1', candidate: 'http://b:1'}\n"
            "routes: [{match: /a.B/C}]\n"
            "grpc: {listen: '127.0.0.1:1', legacy: a:1, candidate: b:1,"
            " methods: [{method: /a.B/C}]}\n"
        )
        assert config_error(document, tmp_path, capsys).startswith(
            "grpc.methods[0].method: names an HTTP route too"
        )
