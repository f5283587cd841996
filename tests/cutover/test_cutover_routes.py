"""Per-route cutover settings through a proxy: methods, mirror, fallback, allowlist, phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shadowproxy.config import ConfigError, settings_from_document
from tests.cutover.cutover_support import TOKEN, admin, probe, records, side, valid
from tests.support import backend, eventually, make_settings, running_proxy

SHADOW = {"grace_s": 0.5, "max_loop_lag_ms": 10_000}


def _doc(*routes: dict[str, Any], **cutover: Any) -> dict[str, Any]:
    return {
        "admin_token": TOKEN,
        "routes": list(routes),
        "evidence": {"sample_matches_percent": 100},
        "shadow": SHADOW,
        "cutover": cutover,
    }


class TestMethods:
    """A route can select by method: GET and POST on one path with different modes."""

    async def test_get_and_post_have_their_own_modes(self, tmp_path: Path) -> None:
        """POST goes to the candidate-mode route, GET stays in shadow; each has its own name."""
        doc = _doc(
            {"match": "/c/*", "methods": ["post"], "mode": "candidate", "mirror_writes": True},
            {"match": "/c/*", "name": "/c"},
        )
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, doc)
            async with running_proxy(settings) as proxy:
                got = await probe(proxy.url + "/c/1")
                posted = await probe(proxy.url + "/c/1", method="POST")
                _, listing = await admin(proxy.admin, "GET", "/cutover")
                requests = {
                    route: proxy.metric(
                        "shadowproxy_requests_total", route=route, method=method, code_class="2xx"
                    )
                    for route, method in (("/c", "GET"), ("POST /c/*", "POST"))
                }
        assert (got[1], posted[1]) == ("legacy", "candidate")
        assert listing["routes"]["POST /c/*"]["mode"] == "candidate"
        assert listing["routes"]["/c"]["mode"] == "shadow"
        assert requests == {"/c": 1, "POST /c/*": 1}

    @pytest.mark.parametrize(
        ("route", "message"),
        [
            ({"match": "/a", "methods": []}, "routes[0].methods: must be a list of HTTP methods"),
            ({"match": "/a", "methods": ["GE T"]}, "routes[0].methods: must be a list of HTTP"),
            (
                {"match": "/a", "mirror": False, "mirror_writes": True},
                "routes[0].mirror_writes: mirror: false never mirrors",
            ),
            ({"match": "/a", "mode": "canary"}, "routes[0].canary_percent: a canary needs"),
            ({"match": "/a", "canary_allow": [""]}, "routes[0].canary_allow: must be a list"),
            ({"match": "/a", "fallback": "yes"}, "routes[0].fallback: must be true or false"),
        ],
    )
    def test_bad_keys(self, route: dict[str, Any], message: str) -> None:
        """Each bad value is one ConfigError naming the file and key."""
        upstreams = {"legacy": "http://127.0.0.1:1", "candidate": "http://127.0.0.1:2"}
        with pytest.raises(ConfigError) as caught:
            settings_from_document({"upstreams": upstreams, "routes": [route]}, "t.yaml", env={})
        assert str(caught.value).startswith(f"t.yaml: {message}")


class TestMirrorOff:
    """``mirror: false`` keeps a state-changing GET from ever being replayed."""

    @pytest.mark.parametrize("mode", ["shadow", "candidate"])
    async def test_never_mirrored(self, tmp_path: Path, mode: str) -> None:
        """The side that does not answer never sees the request; the skip is ``mirror_off``."""
        doc = _doc({"match": "/claim/*", "name": "/claim", "mirror": False, "mode": mode})
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, doc)
            async with running_proxy(settings) as proxy:
                answered = [(await probe(proxy.url + "/claim/7"))[1] for _ in range(3)]
                skipped = proxy.metric("shadowproxy_shadow_skipped_total", reason="mirror_off")
                # A mirror would have started at once: a probe on another route proves it did not.
                await probe(proxy.url + "/other")
                await candidate.wait_for(lambda seen: any(s.path == "/other" for s in seen))
        other = legacy if mode == "candidate" else candidate
        assert set(answered) == {"legacy" if mode == "shadow" else "candidate"}
        assert not [s for s in other.seen if s.path.startswith("/claim")]
        assert skipped == 3


class TestFallback:
    """Retry-on-legacy after a candidate failure is a per-route setting, counted."""

    @pytest.mark.parametrize(
        ("fallback", "status", "answered_by", "retries"),
        [(None, 200, "legacy", 1), (False, 502, None, 0)],
    )
    async def test_setting(
        self,
        tmp_path: Path,
        closed_port: int,
        fallback: bool | None,
        status: int,
        answered_by: str | None,
        retries: int,
    ) -> None:
        """On (the default) a refused candidate's GET is retried on legacy; off, it is a 502."""
        route: dict[str, Any] = {"match": "/f/*", "name": "/f", "mode": "candidate"}
        if fallback is not None:
            route["fallback"] = fallback
        async with backend(side("legacy")) as legacy:
            dead = f"http://127.0.0.1:{closed_port}"
            settings = make_settings(legacy.url, dead, tmp_path, _doc(route))
            async with running_proxy(settings) as proxy:
                answer = await probe(proxy.url + "/f/1")
                counted = proxy.metric("shadowproxy_fallback_total", route="/f")
        assert answer[:2] == (status, answered_by)
        assert counted == retries

    def test_default_from_cutover(self) -> None:
        """``cutover.fallback: false`` turns it off for every route that does not say."""
        upstreams = {"legacy": "http://127.0.0.1:1", "candidate": "http://127.0.0.1:2"}
        routes = [{"match": "/a"}, {"match": "/b", "fallback": True}]
        settings = settings_from_document(
            {"upstreams": upstreams, "routes": routes, "cutover": {"fallback": False}}, "t", env={}
        )
        assert [spec.fallback for spec in settings.routes] == [False, True]


class TestAllowlist:
    """Canary by an explicit list of keys from the sticky header or cookie."""

    async def test_allowlisted_keys_get_the_candidate(self, tmp_path: Path) -> None:
        """At 0 % only allowlisted tenants reach the candidate; others and no header get legacy."""
        route = {
            "match": "/t/*",
            "name": "/t",
            "mode": "canary",
            "canary_percent": 0,
            "sticky": "header:X-Tenant",
            "canary_allow": ["tenant-7", "tenant-9"],
        }
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _doc(route))
            async with running_proxy(settings) as proxy:
                seen = {
                    tenant: (await probe(proxy.url + "/t/1", headers=headers))[1]
                    for tenant, headers in (
                        ("tenant-7", {"X-Tenant": "tenant-7"}),
                        ("tenant-9", {"X-Tenant": "tenant-9"}),
                        ("tenant-1", {"X-Tenant": "tenant-1"}),
                        ("none", {}),
                    )
                }
                zero = await admin(proxy.admin, "POST", "/cutover", _canary0("/t"))
        assert seen == {
            "tenant-7": "candidate",
            "tenant-9": "candidate",
            "tenant-1": "legacy",
            "none": "legacy",
        }
        assert zero[0] == 200

    async def test_zero_percent_needs_an_allowlist(self, tmp_path: Path) -> None:
        """The admin API refuses a 0 % canary on a route without an allowlist."""
        doc = _doc({"match": "/a/*", "name": "/a"})
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, doc)
            async with running_proxy(settings) as proxy:
                status, body = await admin(proxy.admin, "POST", "/cutover", _canary0("/a"))
        assert status == 400 and "(0, 100]" in body["error"]


def _canary0(route: str) -> dict[str, Any]:
    return {"route": route, "mode": "canary", "percent": 0}


class TestPhaseInEvidence:
    """Every rollup and exchange record says which phase it was gathered in."""

    async def test_rollups_split_by_phase(self, tmp_path: Path) -> None:
        """Requests before and after a switch land in rollups of their own phase."""
        doc = _doc({"match": "/p/*", "name": "/p", "domain": "orders"})
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, doc)
            async with running_proxy(settings) as proxy:
                await probe(proxy.url + "/p/1")
                await admin(
                    proxy.admin,
                    "POST",
                    "/cutover",
                    {"route": "/p", "mode": "canary", "percent": 50},
                )
                for n in range(4):
                    await probe(proxy.url + f"/p/{n}")
                await eventually(lambda: len(records(tmp_path, "exchange")) == 5)
        rollups = records(tmp_path, "rollup")
        phases = {(r["mode"], r["canary_percent"]): r["compared"] for r in rollups}
        assert phases == {("shadow", None): 1, ("canary", 50.0): 4}
        exchanges = records(tmp_path, "exchange")
        assert [e["mode"] for e in exchanges] == ["shadow"] + ["canary"] * 4
        assert all(valid(r, "rollup") for r in rollups)
        assert all(valid(e, "exchange") for e in exchanges)
        canary = next(r for r in rollups if r["mode"] == "canary")
        assert (
            canary["mode_since"] > next(r for r in rollups if r["mode"] == "shadow")["mode_since"]
        )
