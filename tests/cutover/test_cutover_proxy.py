"""Cutover through a real in-process proxy: modes, switching, force-legacy, retry and rollback."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shadowproxy.admin.app import AdminContext, build_admin_app
from shadowproxy.cutover.canary import in_canary
from shadowproxy.cutover.ownership import Ownership
from shadowproxy.shadow.control import ShadowSwitch
from tests.cutover.cutover_support import TOKEN, admin, probe, records, shown, side, valid
from tests.support import backend, eventually, make_settings, running_proxy

ROUTE = "/a"


def _doc(mode: str | None = None, **route: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"match": "/a/*", "name": ROUTE, "domain": "orders", **route}
    if mode is not None:
        spec["mode"] = mode
    return {
        "admin_token": TOKEN,
        "routes": [spec],
        "evidence": {"sample_matches_percent": 100},
        # The first requests of a test process meet import-time loop lag; never shed them.
        "shadow": {"grace_s": 0.5, "max_loop_lag_ms": 10_000},
    }


class TestModes:
    """Each mode picks the answering side and the mirrored side."""

    async def test_shadow(self, tmp_path: Path) -> None:
        """shadow: legacy answers, the candidate gets the marked copy."""
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _doc())
            async with running_proxy(settings) as proxy:
                assert (await probe(proxy.url + "/a/1"))[:2] == (200, "legacy")
                await candidate.wait_for(lambda seen: len(seen) == 1)
        assert ("X-Shadow-Request", "1") in candidate.seen[0].headers

    async def test_candidate_reverse_shadow(self, tmp_path: Path) -> None:
        """candidate: the candidate answers, legacy gets the copy, the record says who answered."""
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _doc("candidate"))
            async with running_proxy(settings) as proxy:
                status, answered_by, body = await probe(proxy.url + "/a/1")
                assert (status, answered_by, body["side"]) == (200, "candidate", "candidate")
                await legacy.wait_for(lambda seen: len(seen) == 1)
                await eventually(lambda: bool(records(tmp_path, "exchange")))
        assert ("X-Shadow-Request", "1") in legacy.seen[0].headers
        (exchange,) = records(tmp_path, "exchange")
        assert exchange["answered_by"] == "candidate" and valid(exchange, "exchange")
        # Sides keep their names: the diff reads legacy -> candidate whichever answered.
        assert {"path": "$.side", "legacy": "legacy", "candidate": "candidate"}.items() <= (
            exchange["differences"][0].items()
        )

    async def test_legacy_only(self, tmp_path: Path) -> None:
        """legacy-only: legacy answers, nothing is mirrored (skip reason ``mode``)."""
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _doc("legacy-only"))
            async with running_proxy(settings) as proxy:
                assert (await probe(proxy.url + "/a/1"))[:2] == (200, "legacy")
                skipped = proxy.metric("shadowproxy_shadow_skipped_total", reason="mode")
        assert skipped == 1
        assert candidate.seen == []

    async def test_canary_is_sticky(self, tmp_path: Path) -> None:
        """canary: a key on the candidate's side always gets the candidate, the other legacy."""
        keys = [f"user-{n}" for n in range(100)]
        on_candidate = next(k for k in keys if in_canary(f"header:{k}", 50))
        on_legacy = next(k for k in keys if not in_canary(f"header:{k}", 50))
        doc = _doc("canary", canary_percent=50, sticky="header:X-User")
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, doc)
            async with running_proxy(settings) as proxy:
                answers = {
                    key: {
                        (await probe(proxy.url + "/a/1", headers={"X-User": key}))[1]
                        for _ in range(5)
                    }
                    for key in (on_candidate, on_legacy)
                }
                # Each request is mirrored to the side that did not answer.
                await legacy.wait_for(lambda seen: len(seen) == 10)
                await candidate.wait_for(lambda seen: len(seen) == 10)
        assert answers == {on_candidate: {"candidate"}, on_legacy: {"legacy"}}


class TestSwitching:
    """The admin API and SIGHUP switch modes at once, recorded, without dropping requests."""

    async def test_admin_switch(self, tmp_path: Path) -> None:
        """POST /cutover moves the route; GET lists it; the gauge and a record follow."""
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _doc())
            async with running_proxy(settings) as proxy:
                status, body = await admin(
                    proxy.admin,
                    "POST",
                    "/cutover",
                    {"route": ROUTE, "mode": "candidate", "reason": "parity reached"},
                )
                assert (status, body["changed"], body["effective"]) == (200, True, "candidate")
                assert (await probe(proxy.url + "/a/1"))[1] == "candidate"
                _, listing = await admin(proxy.admin, "GET", "/cutover")
                gauge = proxy.metric("shadowproxy_route_mode", route=ROUTE, mode="candidate")
                # The path form: the route name keeps its slash after /cutover/.
                status, _ = await admin(proxy.admin, "POST", "/cutover//a", {"mode": "shadow"})
                assert status == 200
                assert (await probe(proxy.url + "/a/1"))[1] == "legacy"
                assert proxy.metric("shadowproxy_route_mode", route=ROUTE, mode="candidate") == 0
                await eventually(lambda: len(records(tmp_path, "ownership")) == 2)
        assert shown(listing, ROUTE) == ("candidate", 100.0, "candidate", "api")
        assert gauge == 1
        first, second = records(tmp_path, "ownership")
        assert {k: first[k] for k in ("route", "from", "to", "percent", "reason", "source")} == {
            "route": ROUTE,
            "from": "shadow",
            "to": "candidate",
            "percent": 100.0,
            "reason": "parity reached",
            "source": "api",
        }
        assert (second["from"], second["to"]) == ("candidate", "shadow")
        assert valid(first, "ownership") and valid(second, "ownership")

    @pytest.mark.parametrize(
        ("path", "body", "status"),
        [
            ("/cutover", {"route": "/nope", "mode": "shadow"}, 404),
            ("/cutover", {"route": ROUTE, "mode": "blue"}, 400),
            ("/cutover", {"route": ROUTE, "mode": "canary"}, 400),
            ("/cutover", {"route": ROUTE, "mode": "canary", "percent": 5, "source": "x"}, 400),
        ],
    )
    async def test_bad_requests(
        self, tmp_path: Path, path: str, body: dict[str, Any], status: int
    ) -> None:
        """Unknown routes answer 404, bad modes, percents and sources 400."""
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _doc())
            async with running_proxy(settings) as proxy:
                answer = await admin(proxy.admin, "POST", path, body)
        assert answer[0] == status and "error" in answer[1]

    async def test_force_legacy_wins_and_clears(self, tmp_path: Path) -> None:
        """force-legacy sends a candidate route back to legacy; DELETE restores the route's mode."""
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _doc("candidate"))
            async with running_proxy(settings) as proxy:
                assert (await probe(proxy.url + "/a/1"))[1] == "candidate"
                await admin(proxy.admin, "POST", "/cutover/force-legacy", {"reason": "incident"})
                forced = (await probe(proxy.url + "/a/1"))[1]
                _, listing = await admin(proxy.admin, "GET", "/cutover")
                gauge = proxy.metric("shadowproxy_route_mode", route=ROUTE, mode="force-legacy")
                await admin(proxy.admin, "DELETE", "/cutover/force-legacy")
                assert (await probe(proxy.url + "/a/1"))[1] == "candidate"
                await eventually(lambda: len(records(tmp_path, "ownership")) == 2)
        assert (forced, listing["force_legacy"], gauge) == ("legacy", True, 1)
        assert listing["routes"][ROUTE]["effective"] == "force-legacy"
        on, off = records(tmp_path, "ownership")
        assert valid(on, "ownership") and valid(off, "ownership")
        assert (on["route"], on["to"], on["reason"], off["from"]) == (
            "*",
            "force-legacy",
            "incident",
            "force-legacy",
        )

    async def test_in_flight_request_survives_a_switch(self, tmp_path: Path) -> None:
        """A slow request started in shadow completes after the route moved to candidate."""
        arrived, release = asyncio.Event(), asyncio.Event()

        async def slow_legacy(request: web.Request) -> web.Response:
            if request.path == "/a/slow":
                arrived.set()
                await release.wait()
            return web.json_response({"side": "legacy"})

        async with backend(slow_legacy) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _doc())
            async with running_proxy(settings) as proxy:
                slow = asyncio.gather(probe(proxy.url + "/a/slow"))
                await asyncio.wait_for(arrived.wait(), 10)
                await admin(proxy.admin, "POST", "/cutover", {"route": ROUTE, "mode": "candidate"})
                after = await probe(proxy.url + "/a/1")
                release.set()
                ((status, answered_by, _),) = await slow
        assert (status, answered_by) == (200, "legacy")
        assert after[1] == "candidate"

    async def test_sighup_applies_changed_modes(self, tmp_path: Path) -> None:
        """SIGHUP with a new route mode moves the route and records source ``sighup``."""
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _doc())
            fresh = make_settings(legacy.url, candidate.url, tmp_path, _doc("candidate"))
            async with running_proxy(settings, reload=lambda: fresh) as proxy:
                os.kill(os.getpid(), signal.SIGHUP)
                await eventually(lambda: bool(records(tmp_path, "ownership")))
                assert (await probe(proxy.url + "/a/1"))[1] == "candidate"
        (change,) = records(tmp_path, "ownership")
        assert (change["to"], change["source"]) == ("candidate", "sighup")


class _Sink:
    def __init__(self) -> None:
        self.records: list[object] = []

    def write_record(self, record: object) -> None:
        self.records.append(record)

    def set_route_mode(self, route: str, mode: str, percent: float) -> None:
        """Gauges are not under test here."""

    def on_rollback(self, route: str, reason: str) -> None:
        """Rollbacks are not under test here."""


class TestToken:
    """Cutover POSTs follow the admin token rule."""

    async def test_token_required(self, tmp_path: Path) -> None:
        """Without the bearer token a switch is refused (401) and nothing changes."""
        settings = make_settings("http://127.0.0.1:1", "http://127.0.0.1:2", tmp_path, _doc())
        ownership = Ownership(settings, _Sink())
        context = AdminContext(
            switch=ShadowSwitch(),
            render_metrics=lambda: (b"", "text/plain"),
            status=dict,
            legacy={"http": "http://127.0.0.1:1"},
            token=b"s3cret",
            cutover=ownership,
        )
        body = {"route": ROUTE, "mode": "candidate"}
        async with TestClient(TestServer(build_admin_app(context))) as client:
            refused = await client.post("/cutover", json=body)
            forced = await client.post("/cutover/force-legacy")
            accepted = await client.post(
                "/cutover", json=body, headers={"Authorization": "Bearer s3cret"}
            )
            listing = await (await client.get("/cutover")).json()
        assert (refused.status, forced.status, accepted.status) == (401, 401, 200)
        assert listing["routes"][ROUTE]["mode"] == "candidate"
        assert listing["force_legacy"] is False


class TestRetry:
    """A candidate that fails outright is retried on legacy for idempotent methods only."""

    @pytest.mark.parametrize(
        ("method", "status", "answered_by"),
        [("GET", 200, "legacy"), ("PUT", 200, "legacy"), ("POST", 502, None)],
    )
    async def test_refused_candidate(
        self, tmp_path: Path, closed_port: int, method: str, status: int, answered_by: str
    ) -> None:
        """GET and PUT get legacy's answer; POST gets 502 JSON naming the candidate."""
        async with backend(side("legacy")) as legacy:
            dead = f"http://127.0.0.1:{closed_port}"
            settings = make_settings(legacy.url, dead, tmp_path, _doc("candidate"))
            async with running_proxy(settings) as proxy:
                answer = await probe(proxy.url + "/a/1", method=method)
                failures = proxy.metric(
                    "shadowproxy_upstream_errors_total", upstream="candidate", reason="refused"
                )
        assert answer[:2] == (status, answered_by)
        if status == 502:
            assert answer[2] == {"error": "refused", "upstream": "candidate"}
        assert failures >= 1


def _rollback_doc(**rollback: float) -> dict[str, Any]:
    doc = _doc("candidate")
    limits = {"min_samples": 5, "max_structural_rate": 1, "max_error_rate": 1, "max_p99_ratio": 1e6}
    doc["cutover"] = {"rollback": {**limits, **rollback}}
    return doc


def _candidate(kind: str) -> Any:
    async def answer(request: web.Request) -> web.Response:
        if kind == "structural":
            return web.json_response([{"side": "legacy"}])
        if kind == "errors":
            return web.json_response({"side": "legacy"}, status=500)
        await asyncio.sleep(0.05)  # a slow candidate, not a synchronisation
        return web.json_response({"side": "legacy"})

    return answer


class TestRollback:
    """Each trigger returns the route to shadow with its record and metric."""

    @pytest.mark.parametrize(
        ("reason", "limit"),
        [
            ("structural", {"max_structural_rate": 0.1}),
            ("errors", {"max_error_rate": 0.1}),
            ("latency", {"max_p99_ratio": 2.0}),
        ],
    )
    async def test_trigger(self, tmp_path: Path, reason: str, limit: dict[str, float]) -> None:
        """Past the threshold the route is in shadow again, recorded with the numbers."""
        async with backend(side("legacy")) as legacy, backend(_candidate(reason)) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _rollback_doc(**limit))
            async with running_proxy(settings) as proxy:
                answered = []
                for _ in range(100):
                    answered.append((await probe(proxy.url + "/a/1"))[1])
                    _, listing = await admin(proxy.admin, "GET", "/cutover")
                    if listing["routes"][ROUTE]["mode"] == "shadow":
                        break
                rollbacks = proxy.metric("shadowproxy_rollbacks_total", route=ROUTE, reason=reason)
                gauge = proxy.metric("shadowproxy_route_mode", route=ROUTE, mode="shadow")
                after = await probe(proxy.url + "/a/1")
                await eventually(lambda: bool(records(tmp_path, "ownership")))
        assert listing["routes"][ROUTE]["mode"] == "shadow", answered
        assert (rollbacks, gauge, after[1]) == (1, 1, "legacy")
        (record,) = records(tmp_path, "ownership")
        assert (record["from"], record["to"], record["reason"], record["source"]) == (
            "candidate",
            "shadow",
            reason,
            "rollback",
        )
        assert record["numbers"]["window_s"] == 60 and record["numbers"]["samples"] >= 1
        assert valid(record, "ownership")
        assert listing["history"][-1]["source"] == "rollback"
