"""What a reload applies (routes, rules, cutover, gRPC methods) and what it leaves for a restart."""

from __future__ import annotations

from typing import Any

from shadowproxy.config import reloaded, settings_from_document

UPSTREAMS = {"legacy": "http://127.0.0.1:1", "candidate": "http://127.0.0.1:2"}
GRPC = {"listen": "127.0.0.1:0", "legacy": "127.0.0.1:3", "candidate": "127.0.0.1:4"}


def _settings(**document: Any) -> Any:
    return settings_from_document({"upstreams": UPSTREAMS, **document}, "cfg.yaml")


class TestReloaded:
    def test_reloadable_parts_applied_nothing_left(self) -> None:
        running = _settings(routes=[{"match": "/a", "domain": "a"}])
        fresh = _settings(
            shadow={"sample_percent": 20},
            routes=[{"match": "/b", "domain": "b", "sample_percent": 5}],
            compare={"ignore": ["$.id"]},
            cutover={"default_mode": "legacy-only", "rollback": {"min_samples": 5}},
        )
        applied, left = reloaded(running, fresh)
        assert left == ()
        assert applied == fresh

    def test_restart_only_keys_keep_their_running_values_and_are_named(self) -> None:
        running = _settings(shadow={"max_inflight": 10}, admin_token="t0", drain_s=5)
        fresh = settings_from_document(
            {
                "upstreams": {**UPSTREAMS, "legacy": "https://elsewhere:443"},
                "shadow": {"max_inflight": 20},
                "admin_token": "t1",
                "drain_s": 5,
                "routes": [{"match": "/b", "domain": "b"}],
            },
            "cfg.yaml",
        )
        applied, left = reloaded(running, fresh)
        assert left == ("upstreams.legacy", "admin.token", "shadow.max_inflight")
        assert applied.upstreams == running.upstreams
        assert applied.shadow.max_inflight == 10
        assert applied.admin.token == "t0"
        assert applied.routes == fresh.routes
        assert applied.digest not in {running.digest, fresh.digest}

    def test_grpc_methods_applied_listener_and_upstreams_left(self) -> None:
        running = _settings(grpc=GRPC)
        method = {"method": "/shop.Shop/Get", "domain": "shop", "sample_percent": 50}
        fresh = _settings(grpc={**GRPC, "legacy": "127.0.0.1:9", "methods": [method]})
        applied, left = reloaded(running, fresh)
        assert left == ("grpc.legacy",)
        assert applied.grpc is not None and fresh.grpc is not None and running.grpc is not None
        assert applied.grpc.methods == fresh.grpc.methods
        assert applied.grpc.legacy == running.grpc.legacy
