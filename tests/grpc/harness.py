"""The proxy under test with its gRPC listener, a client stub to it, and its evidence."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from tests.grpc.shop import Script, ShopCode, ShopServer, shop_server
from tests.support import (
    ADMIN_AUTH,
    ADMIN_TOKEN,
    RunningProxy,
    eventually,
    make_settings,
    records,
    running_proxy,
)

GET = "/shop.v1.Shop/GetItem"

UNUSED_HTTP = "http://127.0.0.1:9"
"""HTTP upstreams the gRPC tests never call (the settings require them)."""


CALM: dict[str, Any] = {
    "shadow": {"max_loop_lag_ms": 60_000},
    "compare": {"timing": {"absolute_ms": 600_000, "min_delta_ms": 600_000}},
}
"""Defaults that keep a busy test machine out of the verdicts: no load shedding, no
timing differences (tests that want either set them)."""


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        both = isinstance(current, dict) and isinstance(value, dict)
        merged[key] = _merged(current, value) if both else value  # type: ignore[arg-type]
    return merged


@dataclass
class Proxied:
    """A running proxy and a Shop client stub talking to its gRPC listener."""

    proxy: RunningProxy
    stub: Any
    channel: grpc.aio.Channel

    def metric(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent)."""
        return self.proxy.metric(name, **labels)

    def raw(self, method: str) -> Any:
        """A raw-bytes unary callable for any method name, through the proxy."""
        return self.channel.unary_unary(method, None, None)


@contextlib.asynccontextmanager
async def proxied(
    shop: ShopCode,
    tmp_path: Path,
    *,
    legacy: str,
    candidate: str,
    secondary: str | None = None,
    grpc_section: dict[str, Any] | None = None,
    document: dict[str, Any] | None = None,
    descriptors: bool = True,
    reloaded: dict[str, Any] | None = None,
    http: bool = True,
) -> AsyncIterator[Proxied]:
    """Run the proxy with a gRPC listener in front of ``legacy`` and ``candidate``.

    With ``reloaded``, SIGHUP swaps in the settings with those ``grpc`` keys changed.
    Without ``http`` the proxy has no HTTP upstreams: a gRPC-only sidecar.
    """
    section: dict[str, Any] = {"listen": "127.0.0.1:0", "legacy": legacy, "candidate": candidate}
    if secondary is not None:
        section["secondary"] = secondary
    if descriptors:
        section["descriptors"] = str(shop.descriptors)
    section.update(grpc_section or {})
    doc = _merged(CALM, {"evidence": {"sample_matches_percent": 100}, **(document or {})})
    doc["grpc"] = section
    upstream = UNUSED_HTTP if http else None
    settings = make_settings(upstream, upstream, tmp_path / "logs", doc)
    reload = None
    if reloaded is not None:
        fresh = make_settings(
            upstream, upstream, tmp_path / "logs", {**doc, "grpc": {**section, **reloaded}}
        )
        reload = lambda: fresh  # noqa: E731 - the loader running_proxy expects
    async with running_proxy(settings, reload=reload) as proxy:
        assert proxy.bound.grpc is not None
        async with grpc.aio.insecure_channel(str(proxy.bound.grpc)) as channel:
            yield Proxied(proxy, shop.pb2_grpc.ShopStub(channel), channel)


@contextlib.asynccontextmanager
async def shop_pair(
    shop: ShopCode, tmp_path: Path, **options: Any
) -> AsyncIterator[tuple[ShopServer, ShopServer, Proxied]]:
    """Default legacy and candidate Shop servers, and the proxy in front of both."""
    async with shop_server(shop) as legacy, shop_server(shop) as candidate:
        async with proxied(
            shop, tmp_path, legacy=legacy.target, candidate=candidate.target, **options
        ) as p:
            yield legacy, candidate, p


async def compared(p: Proxied, route: str, count: int = 1) -> None:
    """Wait until ``count`` exchanges of ``route`` were compared (any verdict, any domain)."""

    def total() -> float:
        return sum(
            p.metric("shadowproxy_comparisons_total", route=route, domain=domain, verdict=v)
            for v in ("match", "diverged", "noise", "error")
            for domain in ("default", "shop")
        )

    await eventually(lambda: total() >= count)


async def one_exchange(
    shop: ShopCode,
    tmp_path: Path,
    legacy_script: Script,
    candidate_script: Script,
    **options: Any,
) -> dict[str, Any]:
    """GetItem once through the proxy; the exchange record it produced."""
    async with shop_server(shop, legacy_script) as legacy:
        async with shop_server(shop, candidate_script) as candidate:
            async with proxied(
                shop, tmp_path, legacy=legacy.target, candidate=candidate.target, **options
            ) as p:
                with contextlib.suppress(grpc.aio.AioRpcError):  # legacy's own error
                    await p.stub.GetItem(shop.pb2.GetItemRequest(id="9"), timeout=5.0)
                await compared(p, GET)
    (record,) = records(tmp_path, GET)
    return record


PROBE = (("x-shadow-probe", ADMIN_TOKEN),)
"""The drill's probe metadata: the proxy then says which side answered."""


def side(name: str) -> Script:
    """A Shop server answering the same items as the other side, naming itself in metadata."""
    return Script(initial=(("x-side", name),))


def methods(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"methods": list(entries)}


async def cutover(p: Proxied, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    """Call the proxy's /cutover admin endpoint with the token."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, p.proxy.admin + "/cutover", json=body, headers=ADMIN_AUTH) as r,
    ):
        return await r.json()


async def answered_by(p: Proxied, shop: ShopCode, **metadata: str) -> str:
    """Which side a probe call answered (from the proxy's own x-shadow-answered-by)."""
    call = p.stub.GetItem(
        shop.pb2.GetItemRequest(id="1"), metadata=(*PROBE, *metadata.items()), timeout=10
    )
    await call
    shown = dict(await call.initial_metadata())
    assert shown["x-side"] in ("legacy", "candidate")
    assert shown["x-shadow-answered-by"] == shown["x-side"]
    return str(shown["x-shadow-answered-by"])


@contextlib.asynccontextmanager
async def pair(
    shop: ShopCode,
    tmp_path: Path,
    section: dict[str, Any],
    document: dict[str, Any] | None = None,
    *,
    candidate: Script | None = None,
) -> AsyncIterator[tuple[ShopServer, ShopServer, Proxied]]:
    """Legacy and candidate Shop servers naming their side, and the proxy with ``section``."""
    async with shop_server(shop, side("legacy")) as old:
        async with shop_server(shop, candidate or side("candidate")) as new:
            async with proxied(
                shop,
                tmp_path,
                legacy=old.target,
                candidate=new.target,
                grpc_section=section,
                document=document,
            ) as p:
                yield old, new, p
