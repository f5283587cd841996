"""``grpc.tls``: the gRPC upstreams over TLS with ``upstreams.tls``'s CAs and client certificate."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import trustme

from tests.grpc.harness import Proxied, proxied, records
from tests.grpc.shop import ShopCode, ShopServer, shop_server
from tests.support import eventually

GET = "/shop.v1.Shop/GetItem"


def _mutual_tls(ca: trustme.CA) -> grpc.ServerCredentials:
    """Server credentials for 127.0.0.1 that require a client certificate ``ca`` signed."""
    server = ca.issue_cert("127.0.0.1")
    return grpc.ssl_server_credentials(
        [(server.private_key_pem.bytes(), b"".join(p.bytes() for p in server.cert_chain_pems))],
        root_certificates=ca.cert_pem.bytes(),
        require_client_auth=True,
    )


def _upstream_tls(ca: trustme.CA, tmp_path: Path, layout: str) -> dict[str, str]:
    """``upstreams.tls`` for a client certificate ``ca`` signed: the key in a file of its
    own (``separate``), inside the certificate file (``combined``), or no certificate."""
    client = ca.issue_cert("shadowproxy.client.test")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "c.key"
    ca.cert_pem.write_to_path(str(ca_file))
    if layout == "trust-only":
        return {"ca_file": str(ca_file)}
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    if layout == "combined":
        client.private_key_pem.write_to_path(str(cert_file), append=True)
        return {"ca_file": str(ca_file), "cert_file": str(cert_file)}
    client.private_key_pem.write_to_path(str(key_file))
    return {"ca_file": str(ca_file), "cert_file": str(cert_file), "key_file": str(key_file)}


@contextlib.asynccontextmanager
async def _tls_pair(
    shop: ShopCode, tmp_path: Path, layout: str
) -> AsyncIterator[tuple[ShopServer, ShopServer, Proxied]]:
    """Two Shop servers requiring client certificates, and the proxy with ``grpc.tls`` on."""
    ca = trustme.CA()
    async with (
        shop_server(shop, tls=_mutual_tls(ca)) as legacy,
        shop_server(shop, tls=_mutual_tls(ca)) as candidate,
        proxied(
            shop,
            tmp_path,
            legacy=legacy.target,
            candidate=candidate.target,
            grpc_section={"tls": True},
            document={"upstreams": {"tls": _upstream_tls(ca, tmp_path, layout)}},
        ) as p,
    ):
        yield legacy, candidate, p


class TestGrpcTls:
    @pytest.mark.parametrize("layout", ["separate", "combined"])
    async def test_calls_and_mirrors_over_mutual_tls(
        self, shop: ShopCode, tmp_path: Path, layout: str
    ) -> None:
        """Legacy answers over TLS and the candidate gets the mirror; both checked the client."""
        async with _tls_pair(shop, tmp_path, layout) as (legacy, candidate, p):
            item = await p.stub.GetItem(shop.pb2.GetItemRequest(id="9"), timeout=5.0)
            assert item.id == "9"
            await candidate.wait_calls(1)
            labels = {"route": GET, "domain": "default", "verdict": "match"}
            await eventually(lambda: p.metric("shadowproxy_comparisons_total", **labels) == 1)
        assert len(legacy.seen) == 1
        (record,) = records(tmp_path, GET)
        assert record["verdict"] == "match"

    async def test_without_the_client_certificate_legacy_refuses(
        self, shop: ShopCode, tmp_path: Path
    ) -> None:
        """Trust alone is not enough for a server that requires a client certificate."""
        async with _tls_pair(shop, tmp_path, "trust-only") as (legacy, _, p):
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await p.stub.GetItem(shop.pb2.GetItemRequest(id="9"), timeout=5.0)
        assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
        assert legacy.seen == []
