"""A gRPC-only sidecar: no HTTP upstream, no HTTP listener, readiness from the gRPC legacy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from shadowproxy.cli import main
from tests.grpc.harness import GET, compared, proxied, records
from tests.grpc.shop import ShopCode, shop_server
from tests.support import config_error, held_port, proxy_process


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


class TestGrpcOnly:
    """Without ``upstreams`` the proxy runs gRPC alone."""

    async def test_runs_without_http_upstreams(self, shop: ShopCode, tmp_path: Path) -> None:
        """No HTTP listener; calls answered, mirrored, compared; /readyz and /status say so."""
        async with shop_server(shop) as legacy, shop_server(shop) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target, http=False
            ) as p:
                item = await p.stub.GetItem(shop.pb2.GetItemRequest(id="7"), timeout=5.0)
                await compared(p, GET)
                ready = await _get(p.proxy.admin + "/readyz")
                _, status = await _get(p.proxy.admin + "/status")
                assert p.proxy.bound.proxy is None
        assert item.id == "7"
        assert ready == (
            200,
            {"ready": True, "legacy": "reachable", "planes": {"grpc": "reachable"}},
        )
        assert status["upstreams"] is None
        assert status["grpc_upstreams"] == {
            "legacy": legacy.target,
            "candidate": candidate.target,
            "secondary": None,
        }
        (record,) = records(tmp_path, GET)
        assert record["verdict"] == "match"

    async def test_ready_follows_the_grpc_legacy(self, shop: ShopCode, tmp_path: Path) -> None:
        """/readyz answers 503 while the gRPC legacy refuses connections."""
        with held_port() as sock:
            gone = f"127.0.0.1:{sock.getsockname()[1]}"
            async with shop_server(shop) as candidate:
                async with proxied(
                    shop, tmp_path, legacy=gone, candidate=candidate.target, http=False
                ) as p:
                    ready = await _get(p.proxy.admin + "/readyz")
        assert ready == (
            503,
            {"ready": False, "legacy": "unreachable", "planes": {"grpc": "unreachable"}},
        )

    async def test_both_planes_must_be_ready(self, shop: ShopCode, tmp_path: Path) -> None:
        """With HTTP and gRPC, /readyz needs both legacies; each is shown on its own."""
        async with shop_server(shop) as legacy, shop_server(shop) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target
            ) as p:
                ready = await _get(p.proxy.admin + "/readyz")
        # The HTTP legacy of the harness is a port nothing listens on.
        assert ready == (
            503,
            {
                "ready": False,
                "legacy": "unreachable",
                "planes": {"http": "unreachable", "grpc": "reachable"},
            },
        )

    @pytest.mark.slow
    async def test_workers_without_http(self, shop: ShopCode) -> None:
        """``shadowproxy run`` with gRPC flags only, two workers: it starts and answers."""
        async with shop_server(shop) as legacy, shop_server(shop) as candidate:
            async with proxy_process(
                "--grpc-listen",
                "127.0.0.1:0",
                "--grpc-legacy",
                legacy.target,
                "--grpc-candidate",
                candidate.target,
                "--workers",
                "2",
            ) as running:
                assert running.grpc is not None
                async with grpc.aio.insecure_channel(running.grpc) as channel:
                    stub = shop.pb2_grpc.ShopStub(channel)
                    items = [
                        await stub.GetItem(shop.pb2.GetItemRequest(id=str(n)), timeout=10.0)
                        for n in range(4)
                    ]
                assert await running.terminate() == 0
        assert [item.id for item in items] == ["0", "1", "2", "3"]


class TestConfiguration:
    """Only gRPC may leave the HTTP upstreams out, and then both of them."""

    def test_grpc_only_file_is_valid(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A file with a grpc section and no upstreams passes check-config."""
        path = tmp_path / "grpc.yaml"
        path.write_text("grpc: {listen: 127.0.0.1:50051, legacy: a:1, candidate: b:1}\n")
        assert main(["check-config", str(path)]) == 0

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ("listen: 127.0.0.1:8080\n", "upstreams.legacy: is required"),
            (
                "upstreams: {legacy: 'http://a:1'}\n"
                "grpc: {listen: 127.0.0.1:50051, legacy: a:1, candidate: b:1}\n",
                "upstreams.candidate: is required",
            ),
        ],
    )
    def test_half_an_http_plane_is_refused(
        self,
        document: str,
        message: str,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Without gRPC the HTTP upstreams are required; with it, both or neither."""
        assert config_error(document, tmp_path, capsys).startswith(message)
