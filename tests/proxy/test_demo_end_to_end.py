"""The bundled demo backends through the proxy: every verdict is the one the rewrite earns."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from shadowproxy.demo.backends import DEMO_PATHS
from shadowproxy.demo.run import DEMO_CONFIG, running_backend
from tests.support import make_settings, running_proxy

ROUNDS = 3


def _records(log_dir: Path, kind: str) -> list[dict[str, Any]]:
    lines = b"".join(p.read_bytes() for p in sorted(log_dir.glob("shadow-*.jsonl*")))
    return [r for r in map(orjson.loads, lines.splitlines()) if r["type"] == kind]


class TestDemoVerdicts:
    """Each demo route gets exactly the verdict its deliberate difference deserves."""

    async def test_every_route(self, tmp_path: Path) -> None:
        """Renamed field, changed type, drifted value, slow endpoint, noisy id and matches."""
        document = {
            **DEMO_CONFIG,
            "evidence": {"sample_matches_percent": 100},
            # Sequential requests on a shared loop: a 50 ms floor keeps scheduling jitter
            # out of the verdicts while /api/search (+120 ms) stays over the 100 ms bar.
            "compare": {"timing": {"min_delta_ms": 50}},
        }
        async with (
            running_backend("legacy") as legacy,
            running_backend("legacy") as secondary,
            running_backend("candidate") as candidate,
        ):
            settings = make_settings(legacy, candidate, tmp_path, document, secondary=secondary)
            async with running_proxy(settings) as proxy, aiohttp.ClientSession() as session:
                for _ in range(ROUNDS):
                    for path in DEMO_PATHS:
                        async with session.get(proxy.url + path) as response:
                            assert response.status == 200
        by_route: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in _records(tmp_path, "exchange"):
            by_route[record["route"]].append(record)

        def summary(
            route: str,
        ) -> set[tuple[str, tuple[str, ...], tuple[tuple[str, str, str, bool], ...]]]:
            return {
                (
                    r["verdict"],
                    tuple(r["classes"]),
                    tuple(
                        sorted(
                            (d["class"], d["kind"], d["path"], d["noise"]) for d in r["differences"]
                        )
                    ),
                )
                for r in by_route[route]
            }

        assert summary("/api/users/{id}") == {
            (
                "diverged",
                ("structural",),
                (
                    ("semantic", "value", "$.request_id", True),
                    ("structural", "extra", "$.email_address", False),
                    ("structural", "missing", "$.email", False),
                ),
            )
        }
        assert summary("/api/orders/{id}") == {
            (
                "diverged",
                ("semantic", "structural"),
                (
                    ("semantic", "value", "$.request_id", True),
                    ("semantic", "value", "$.total", False),
                    ("structural", "type", "$.items[0].qty", False),
                ),
            )
        }
        assert summary("/api/search") == {
            ("diverged", ("timing",), (("timing", "latency", "latency", False),))
        }
        assert summary("/api/health") == {("match", (), ())}
        assert summary("/api/catalog") == {("match", (), ())}
        users = by_route["/api/users/{id}"][0]
        assert users["equivalences"] == {"timestamps": 1}
        assert len(by_route["/api/users/{id}"]) == 2 * ROUNDS
